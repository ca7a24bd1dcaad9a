"""A metric chart: log-step axis drawn by hand, EMA with the raw curve faded behind,
event markers, reference lines, and redraws throttled to a timer and downsampled to the
widget's width.

plotext 5's own log scale fails on a second build (DESIGN §9), so x (and y for losses) are
plotted as log10 values with hand-made tick labels.

The title and legend are one line drawn by the widget above plotext's canvas, so nothing
plotext draws (event labels) can land on them. Each curve has a glyph of its own besides its
colour (train and test differ by a grey level only under NO_COLOR): the first is a plain
braille line, the others carry their glyph every few columns, and the legend shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual_plotext import PlotextPlot

from grokterm.tui.series import (
    Series,
    StepSeries,
    linear_ticks,
    log_ticks,
    smoothing_horizon,
    step_ema,
)

PALETTE = ["cyan+", "orange+", "green+", "magenta+", "blue+", "red+", "yellow", "cyan", "orange"]
GLYPHS = ["", "x", "+", "o", "*", "#", "%", "@"]  # a curve's marks, by its place in the chart
FADED = "gray"
REDRAW_SECONDS = 0.2
GLYPH_EVERY = 12  # columns between two marks of one curve
Y_LABELS_WIDTH = 6  # columns left of the canvas (y tick labels, axis), about
PLOT_FRAME = 5  # rows of a chart that are not its canvas: header, frame, x ticks, x label
HEADER_ROWS = 2  # the most rows the title and legend take
LABEL_ROWS = 1  # rows kept free of data at the top of the canvas for event labels
# plotext colour names -> the same terminal colours for Rich (the legend).
PLOTEXT_CODES = {
    "black": 0, "red": 1, "green": 2, "orange": 3, "blue": 4, "magenta": 5, "cyan": 6,
    "gray+": 7, "gray": 8, "red+": 9, "green+": 10, "orange+": 11, "blue+": 12,
    "magenta+": 13, "cyan+": 14, "white": 15,
}  # fmt: skip


@dataclass
class Curve:
    """One line. ``glyph`` None: the chart's next one (GLYPHS); "" for a plain line. A curve
    without a label is drawn but left out of the legend (say, one of many layers)."""

    label: str
    series: Series | StepSeries
    color: str
    glyph: str | None = None


@dataclass
class Marker:
    step: int
    label: str


@dataclass(frozen=True)
class Guide:
    """A horizontal reference line at a y value (such as α = 2), always in view and named
    in the legend."""

    value: float
    label: str
    color: str = "gray+"


def rich_colour(plotext_colour: str) -> str:
    code = PLOTEXT_CODES.get(plotext_colour)
    return f"color({code})" if code is not None else plotext_colour


def value_ticks(lo: float, hi: float, most: int | None = None) -> tuple[list[float], list[str]]:
    """Ticks for a log10 value axis: powers of ten inside [lo, hi] (in log10 units), every
    k-th power when there are more than `most`. (plotext keeps one of two ticks that fall on
    one row, and which one changes from process to process.)"""
    first, last = math.floor(lo), math.ceil(hi)
    every = math.ceil((last - first + 1) / most) if most else 1
    powers = [p for p in range(first, last + 1) if p % every == 0]
    return [float(p) for p in powers], [f"1e{p}" for p in powers]


def glyph_points(
    xs: list[float], ys: list[float], x_lo: float, x_hi: float, count: int, offset: float
) -> tuple[list[float], list[float]]:
    """``count`` points evenly spread over x_lo..x_hi (shifted by ``offset`` of a gap, so two
    curves' glyphs do not fall on the same column), on the curve xs, ys where it has data."""
    if count < 1 or len(xs) < 2 or x_hi <= x_lo:
        return [], []
    if np.any(np.diff(xs) < 0):  # a path (loss against weight norm): spread along it
        picked = np.linspace(0, len(xs) - 1, count + 2)[1:-1].round().astype(int)
        return [xs[i] for i in picked], [ys[i] for i in picked]
    gap = (x_hi - x_lo) / count
    at = [x for x in x_lo + gap * (np.arange(count) + offset) if xs[0] <= x <= xs[-1]]
    return at, np.interp(at, xs, ys).tolist()


def merged_labels(labels: list[tuple[float, str]], per_column: float) -> list[tuple[float, str]]:
    """Labels (x, text) in x order, a label that would run into the one before it joined to
    it ("t3,t4" at t3's line), so that none overwrites another."""
    merged: list[tuple[float, str]] = []
    for x, text in labels:
        if merged and x < merged[-1][0] + (len(merged[-1][1]) + 1) * per_column:
            merged[-1] = (merged[-1][0], f"{merged[-1][1]},{text}")
        else:
            merged.append((x, text))
    return merged


class MetricChart(PlotextPlot):
    """Call `show(curves, markers, version)`; the chart rebuilds only when version changes."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 8; }
    """

    def __init__(
        self, title: str, log_y: bool = False, guides: tuple[Guide, ...] = (), **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.log_x = True
        self.log_y = log_y
        self.smoothing = 0.0
        self.x_range: tuple[float, float] | None = None
        self.guides = tuple(guides)  # set before show(); a change needs a new version
        self.curves: list[Curve] = []
        self.markers: list[Marker] = []
        self.header = Text()
        self._version: object = None
        self._dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self._redraw_if_dirty)

    def show(self, curves: list[Curve], markers: list[Marker], version: object) -> None:
        if version != self._version:
            self.curves, self.markers, self._version = curves, markers, version
            self._dirty = True

    def configure(
        self, *, log_x: bool, smoothing: float, x_range: tuple[float, float] | None = None
    ) -> None:
        """x_range: the steps the x axis spans (the same for every chart of a run, so that
        their event lines line up); None: the data's own range."""
        if (log_x, smoothing, x_range) != (self.log_x, self.smoothing, self.x_range):
            self.log_x, self.smoothing, self.x_range = log_x, smoothing, x_range
            self._dirty = True

    def on_resize(self) -> None:
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty and self.display and self.size.width > 0:
            self._dirty = False
            self.rebuild()
            self.refresh()

    def render(self) -> Text:
        rows = self.header_rows(max(self.size.width, 1))
        plot = self._plot
        height = max(self.size.height - len(rows), 1)
        plot.plotsize(self.size.width, height)
        plot._set_size(self.size.width, height)  # as PlotextPlot.render: resizing needs both
        plot.theme(self._get_plotext_theme_name(self.app.theme))
        return Text("\n").join([*rows, Text.from_ansi(plot.build())])

    def header_rows(self, width: int) -> list[Text]:
        """The title and legend, wrapped; at most HEADER_ROWS rows (eight layers' names must
        not squeeze the canvas to nothing), the last ending in … when some are left out."""
        rows = list(self.header.wrap(self.app.console, width, overflow="ellipsis"))
        if len(rows) <= HEADER_ROWS:
            return rows
        last = rows[HEADER_ROWS - 1]
        last.truncate(max(width - 2, 1))
        last.append(" …", style="dim")
        return rows[: HEADER_ROWS - 1] + [last]

    def rebuild(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        # The theme before any text: plotext gives text the canvas colour it has when drawn.
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        buckets = max(10, self.size.width)
        prepared = [(curve, *self._prepared(curve.series, buckets)) for curve in self.curves]
        prepared = [(curve, xs, ys) for curve, xs, ys in prepared if xs]
        self.header = self._header(prepared)
        if not prepared:
            return
        x_lo, x_hi = self._x_limits(prepared)
        horizon = smoothing_horizon(self.smoothing, x_hi - x_lo)
        glyphs = iter(GLYPHS[1:])
        for index, (curve, xs, ys) in enumerate(prepared):
            glyph = self._glyph(curve, index, glyphs)
            if horizon:
                plt.plot(xs, ys, color=FADED, marker="braille")
                ys = step_ema(xs, ys, horizon)
            plt.plot(xs, ys, color=curve.color, marker="braille")
            if glyph:
                count = max(1, (self.size.width - Y_LABELS_WIDTH) // GLYPH_EVERY)
                gx, gy = glyph_points(xs, ys, x_lo, x_hi, count, 0.5 + 0.37 * index)
                plt.scatter(gx, gy, color=curve.color, marker=glyph)
        y_lo = min(min(ys) for _, _, ys in prepared)
        y_hi = max(max(ys) for _, _, ys in prepared)
        for guide in self._shown_guides():
            y = self._y(guide.value)
            y_lo, y_hi = min(y_lo, y), max(y_hi, y)
            plt.horizontal_line(y, color=guide.color)
        self._axes(x_lo, x_hi, y_lo, y_hi)

    def _glyph(self, curve: Curve, index: int, glyphs) -> str:
        if curve.glyph is not None:
            return curve.glyph
        return "" if index == 0 else next(glyphs, "")

    def _shown_guides(self) -> list[Guide]:
        return [guide for guide in self.guides if guide.value > 0 or not self.log_y]

    def _y(self, value: float) -> float:
        return math.log10(value) if self.log_y else value

    def _x_limits(self, prepared: list) -> tuple[float, float]:
        if self.x_range is not None:
            lo, hi = (self._x(step) for step in self.x_range)
        else:
            lo = min(xs[0] for _, xs, _ in prepared)
            hi = max(xs[-1] for _, xs, _ in prepared)
        return lo, hi

    def _x(self, step: float) -> float:
        return math.log10(max(step, 1.0)) if self.log_x else step

    def _header(self, prepared: list) -> Text:
        """The title (and smoothing), then each labelled curve's line sample and label."""
        text = Text(self.title, style="bold")
        if not prepared:
            text.append(": no data yet")
            return text
        if self.smoothing:
            text.append(f"  (EMA {self.smoothing:.2f})", style="dim")
        if len(prepared) == 1 and not self.guides and prepared[0][0].label in self.title:
            return text  # the title names the one curve
        glyphs = iter(GLYPHS[1:])
        for index, (curve, _, _) in enumerate(prepared):
            glyph = self._glyph(curve, index, glyphs)
            if curve.label:
                text.append("   ")
                text.append(f"⠒{glyph}⠒" if glyph else "⠒⠒⠒", style=rich_colour(curve.color))
                text.append(f" {curve.label}")
        for guide in self._shown_guides():
            text.append("   ")
            text.append("───", style=rich_colour(guide.color))
            text.append(f" {guide.label}")
        return text

    def _prepared(self, series: Series | StepSeries, buckets: int) -> tuple[list, list]:
        # Downsampled first: log is monotone, so each bucket's extremes survive it.
        steps, values = series.chart_points(buckets, self.log_x, self.log_y)
        xs = np.log10(steps).tolist() if self.log_x else steps
        ys = np.log10(values).tolist() if self.log_y else values
        return xs, ys

    def _axes(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        plt = self.plt
        columns = max(self.size.width - Y_LABELS_WIDTH, 10)
        if self.log_x:
            positions, labels = log_ticks(10**x_lo, 10**x_hi, columns)
        else:
            positions, labels = linear_ticks(x_lo, x_hi, columns)
        plt.xticks(positions, labels)
        if x_hi > x_lo:
            plt.xlim(x_lo, x_hi)
        top = y_hi + self._label_room(y_lo, y_hi) if self.markers else y_hi
        if self.log_y and y_hi > y_lo:
            positions, labels = value_ticks(y_lo, y_hi, most=self._canvas_rows())
            plt.yticks(positions, labels)
            top = max(math.ceil(y_hi), top)  # whole decades, as the ticks
            plt.ylim(math.floor(y_lo), top)
        elif top > y_hi:
            plt.ylim(y_lo, top)
        self._draw_markers(x_lo, x_hi, top)
        plt.xlabel("step (log)" if self.log_x else "step")

    def _label_room(self, y_lo: float, y_hi: float) -> float:
        """How far above the data the top of the y axis goes, so the top canvas row(s) hold
        only event labels."""
        canvas_rows = self._canvas_rows()
        span = (y_hi - y_lo) or 1.0
        return span * (LABEL_ROWS + 0.5) / max(canvas_rows - LABEL_ROWS - 0.5, 1)

    def _canvas_rows(self) -> int:
        header = len(self.header_rows(max(self.size.width, 1)))
        return max(self.size.height - header - (PLOT_FRAME - 1), 2)

    def _draw_markers(self, x_lo: float, x_hi: float, top: float) -> None:
        """A faint vertical line per event and the labels in the top row, in the theme's
        text colour on the canvas colour (plotext would draw them in its default white)."""
        plt = self.plt
        shown = []
        for marker in sorted(self.markers, key=lambda m: m.step):
            x = self._x(marker.step)
            if (marker.step > 0 or not self.log_x) and x_lo <= x <= x_hi:
                plt.vertical_line(x, color=FADED)
                shown.append((x, marker.label))
        columns = max(self.size.width - Y_LABELS_WIDTH, 1)
        per_column = (x_hi - x_lo) / columns if x_hi > x_lo else 0.0
        for x, label in merged_labels(shown, per_column):
            x = max(x_lo, min(x, x_hi - (len(label) - 1) * per_column))  # inside the canvas
            plt.text(label, x, top, color=plt.monitor.ticks_color, style="bold", alignment="left")
