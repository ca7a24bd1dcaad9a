"""A metric chart: log-step axis drawn by hand, EMA with the raw curve faded behind,
event markers, and redraws throttled to a timer and downsampled to the widget's width.

plotext 5's own log scale fails on a second build (DESIGN §9), so x (and y for losses) are
plotted as log10 values with hand-made tick labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from textual_plotext import PlotextPlot

from grokterm.tui.series import Series, StepSeries, ema, log_ticks

PALETTE = ["cyan+", "orange+", "green+", "magenta+", "blue+", "red+", "yellow", "cyan", "orange"]
FADED = "gray"
REDRAW_SECONDS = 0.2
PLOT_FRAME = 5  # rows of a chart that are not its canvas: title, frame, x ticks, x label


@dataclass
class Curve:
    label: str
    series: Series | StepSeries
    color: str


@dataclass
class Marker:
    step: int
    label: str


@dataclass(frozen=True)
class Guide:
    """A horizontal reference line at a y value (such as α = 2), always in view."""

    value: float
    label: str


def value_ticks(lo: float, hi: float, most: int | None = None) -> tuple[list[float], list[str]]:
    """Ticks for a log10 value axis: powers of ten inside [lo, hi] (in log10 units), every
    k-th power when there are more than `most`. (plotext keeps one of two ticks that fall on
    one row, and which one changes from process to process.)"""
    first, last = math.floor(lo), math.ceil(hi)
    every = math.ceil((last - first + 1) / most) if most else 1
    powers = [p for p in range(first, last + 1) if p % every == 0]
    return [float(p) for p in powers], [f"1e{p}" for p in powers]


class MetricChart(PlotextPlot):
    """Call `show(curves, markers, version)`; the chart rebuilds only when version changes."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, title: str, log_y: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.log_x = True
        self.log_y = log_y
        self.smoothing = 0.0
        self.curves: list[Curve] = []
        self.markers: list[Marker] = []
        self.guides: tuple[Guide, ...] = ()  # set before show(); a change needs a new version
        self._version: object = None
        self._dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self._redraw_if_dirty)

    def show(self, curves: list[Curve], markers: list[Marker], version: object) -> None:
        if version != self._version:
            self.curves, self.markers, self._version = curves, markers, version
            self._dirty = True

    def configure(self, *, log_x: bool, smoothing: float) -> None:
        if (log_x, smoothing) != (self.log_x, self.smoothing):
            self.log_x, self.smoothing = log_x, smoothing
            self._dirty = True

    def on_resize(self) -> None:
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty and self.display and self.size.width > 0:
            self._dirty = False
            self.rebuild()
            self.refresh()

    def rebuild(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title + (f"  (EMA {self.smoothing:.2f})" if self.smoothing else ""))
        buckets = max(10, self.size.width)
        x_range: list[float] = []
        y_range: list[float] = []
        for curve in self.curves:
            xs, ys = self._prepared(curve.series, buckets)
            if not xs:
                continue
            x_range += [xs[0], xs[-1]]
            y_range += [min(ys), max(ys)]
            if self.smoothing:
                plt.plot(xs, ys, color=FADED, marker="braille")
                plt.plot(
                    xs,
                    ema(ys, self.smoothing),
                    color=curve.color,
                    label=curve.label,
                    marker="braille",
                )
            else:
                plt.plot(xs, ys, color=curve.color, label=curve.label, marker="braille")
        if not x_range:
            plt.title(self.title + ": no data yet")
            return
        y_range += self._guide_ys()
        self._axes(min(x_range), max(x_range), min(y_range), max(y_range))
        self._draw_guides(min(x_range))

    def _prepared(self, series: Series | StepSeries, buckets: int) -> tuple[list, list]:
        # Downsampled first: log is monotone, so each bucket's extremes survive it.
        steps, values = series.chart_points(buckets, self.log_x, self.log_y)
        xs = np.log10(steps).tolist() if self.log_x else steps
        ys = np.log10(values).tolist() if self.log_y else values
        return xs, ys

    def _axes(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        plt = self.plt
        if self.log_x:
            positions, labels = log_ticks(10**x_lo, 10**x_hi)
            plt.xticks(positions, labels)
            plt.xlim(positions[0], positions[-1])
        if self.log_y and y_hi > y_lo:
            positions, labels = value_ticks(y_lo, y_hi, most=max(2, self.size.height - PLOT_FRAME))
            plt.yticks(positions, labels)
            plt.ylim(math.floor(y_lo), math.ceil(y_hi))
        for marker in self.markers:
            if marker.step <= 0 and self.log_x:
                continue
            x = math.log10(marker.step) if self.log_x else marker.step
            plt.vertical_line(x, color=FADED)
            plt.text(marker.label, x, y_hi, color="white")
        plt.xlabel("step (log)" if self.log_x else "step")

    # --- guides (reference lines), kept apart from the axes and curves above ---------------

    def _guide_ys(self) -> list[float]:
        return [y for _, y in self._placed_guides()]

    def _placed_guides(self) -> list[tuple[Guide, float]]:
        """Each guide with its y on the plot (log10 on a log axis, which cannot show <= 0)."""
        if not self.log_y:
            return [(guide, guide.value) for guide in self.guides]
        return [(guide, math.log10(guide.value)) for guide in self.guides if guide.value > 0]

    def _draw_guides(self, x_lo: float) -> None:
        for guide, y in self._placed_guides():
            self.plt.horizontal_line(y, color=FADED)
            self.plt.text(guide.label, x_lo, y, color=FADED, alignment="left")
