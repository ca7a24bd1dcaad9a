"""The chart widget (grokterm/tui/widgets/chart.py) on a Pilot: what a MetricChart draws.

Event labels readable in every colour mode and clear of the legend, curves told apart
without colour, and an x axis that spans the data (or the range the screen gives).
"""

from __future__ import annotations

import math

import pytest
from pilotkit import wait_for
from rich.color import ColorSystem
from rich.style import Style
from textual.app import App
from textual.color import Color
from textual.filter import monochrome_style
from textual.geometry import Region

from grokterm.tui.series import Series
from grokterm.tui.widgets.chart import (
    Curve,
    Guide,
    Marker,
    MetricChart,
    glyph_points,
    merged_labels,
)

MARKERS = [Marker(60, "t1"), Marker(300, "t2"), Marker(2_500, "t3"), Marker(4_500, "t4")]
NOTE = Marker(1_000, "✎")


def series(first: int, last: int, cadence: int, value) -> Series:
    out = Series()
    for step in range(first, last + 1, cadence):
        out.add(step, value(step))
    return out


def train_and_test(first: int = 0, cadence: int = 50) -> list[Curve]:
    return [
        Curve("train", series(first, 6_000, cadence, lambda s: min(1.0, s / 300)), "cyan+"),
        Curve("test", series(first, 6_000, cadence, lambda s: min(1.0, s / 6_000)), "orange+"),
    ]


class ChartApp(App):
    def __init__(self, count: int = 1, **chart_options):
        super().__init__()
        self.count, self.chart_options = count, chart_options

    def compose(self):
        for index in range(self.count):
            yield MetricChart("accuracy", id=f"chart-{index}", **self.chart_options)


async def drawn(pilot, chart: MetricChart, curves, markers, **configure) -> list[list]:
    """Show the curves, wait for the chart's redraw, and return its cells: per row, a list of
    (character, style)."""
    chart.configure(log_x=configure.pop("log_x", True), smoothing=0.0, **configure)
    chart.show(curves, markers, version=object())
    await wait_for(pilot, lambda: not chart._dirty, "the chart's redraw")
    await pilot.pause()
    width, height = chart.size
    rows = []
    for strip in chart.render_lines(Region(0, 0, width, height)):
        cells = []
        for segment in strip:
            cells += [(character, segment.style or Style()) for character in segment.text]
        rows.append(cells)
    return rows


def text_of(rows) -> list[str]:
    return ["".join(character for character, _ in row) for row in rows]


def label_styles(rows, label: str) -> list[Style]:
    for row, line in zip(rows, text_of(rows), strict=True):
        at = line.find(label)
        if at >= 0:
            return [style for _, style in row[at : at + len(label)]]
    raise AssertionError(f"{label!r} not drawn:\n" + "\n".join(text_of(rows)))


COLOUR_MODES = {
    "truecolor": lambda style: style,
    "256 colours": lambda style: downgraded(style, ColorSystem.EIGHT_BIT),
    "TERM=xterm, 16 colours": lambda style: downgraded(style, ColorSystem.STANDARD),
    "NO_COLOR=1": monochrome_style,  # the filter Textual applies under NO_COLOR
}


def downgraded(style: Style, system: ColorSystem) -> Style:
    return Style(
        color=style.color.downgrade(system) if style.color else None,
        bgcolor=style.bgcolor.downgrade(system) if style.bgcolor else None,
    )


def brightness(colour) -> float:
    """0 (black) .. 1 (white), as a terminal with the default palette shows the colour."""
    return Color(*colour.get_truecolor()).brightness


@pytest.mark.parametrize("mode", COLOUR_MODES)
async def test_event_labels_are_legible_in_every_colour_mode(mode):
    """The issue: t1-t4 and ✎ drawn white on white (231 on 231, 97 on 107, 255 on 255)."""
    app = ChartApp()
    async with app.run_test(size=(100, 24)) as pilot:
        chart = app.query_one(MetricChart)
        rows = await drawn(pilot, chart, train_and_test(), [*MARKERS, NOTE])
        for label in ("t1", "t2", "t3", "t4", "✎"):
            for style in label_styles(rows, label):
                shown = COLOUR_MODES[mode](style)
                assert shown.color is not None and shown.bgcolor is not None
                contrast = abs(brightness(shown.color) - brightness(shown.bgcolor))
                assert contrast > 0.4, f"{label} in {mode}: {shown.color} on {shown.bgcolor}"


async def test_event_labels_leave_the_legend_whole():
    """The issue: a label at the left edge wrote over the legend ("alpha/embed.wet1ht2")."""
    app = ChartApp()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(MetricChart)
        curves = [Curve("alpha/embed.weight", series(1, 6_000, 10, lambda s: 3.0), "cyan+")]
        curves.append(Curve("alpha/unembed.weight", series(1, 6_000, 10, lambda s: 4.0), "red+"))
        lines = text_of(await drawn(pilot, chart, curves, [Marker(1, "t1"), Marker(3, "t2")]))
        legend = next(line for line in lines if "alpha/embed.weight" in line)
        assert "alpha/unembed.weight" in legend and "t1" not in legend
        assert any("t1" in line and "t2" in line for line in lines), "\n".join(lines)


async def test_curves_differ_without_colour():
    """Under NO_COLOR train and test differed by a grey level only: each curve has a glyph
    of its own, shown in the legend."""
    app = ChartApp()
    async with app.run_test(size=(100, 24)) as pilot:
        chart = app.query_one(MetricChart)
        lines = text_of(await drawn(pilot, chart, train_and_test(), []))
        legend = lines[0]
        train = legend[: legend.index(" train")].split()[-1]
        test = legend[: legend.index(" test")].split()[-1]
        assert train != test, legend
        glyph = next(c for c in test if c.isascii())  # the test curve's mark, "x"
        canvas = "\n".join(lines[2:-3])
        assert canvas.count(glyph) >= 3, "\n".join(lines)


async def test_reference_line_is_drawn_and_named():
    app = ChartApp(guides=(Guide(2.0, "α=2"),))
    async with app.run_test(size=(100, 24)) as pilot:
        chart = app.query_one(MetricChart)
        curve = Curve("alpha", series(10, 6_000, 10, lambda s: 4 - math.log10(s)), "cyan+")
        lines = text_of(await drawn(pilot, chart, [curve], []))
        assert "─── α=2" in lines[0]
        assert any(line.count("─") > 60 for line in lines[2:-3])  # across the canvas


def tick_labels(lines: list[str]) -> list[str]:
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[axis + 1].split()


async def test_log_x_spans_the_data_with_1_2_5_ticks():
    """A 6,000-step run was drawn to 10k (a fifth of the width empty) with decade ticks."""
    app = ChartApp()
    async with app.run_test(size=(120, 24)) as pilot:
        chart = app.query_one(MetricChart)
        lines = text_of(await drawn(pilot, chart, train_and_test(first=1, cadence=1), []))
        labels = tick_labels(lines)
        assert "10k" not in labels and labels[-2:] == ["2k", "5k"]
        assert {"1", "10", "100", "1k"} <= set(labels)


async def test_linear_x_ticks_are_round():
    """Linear ticks read 0, 127, 254, ...: now 0, 1k, 2k, ... (or 500 apart) to the last step."""
    app = ChartApp()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(MetricChart)
        lines = text_of(await drawn(pilot, chart, train_and_test(), [], log_x=False))
        labels = tick_labels(lines)
        assert labels[0] == "0" and labels[-1] == "6k"
        steps = [float(label.replace("k", "e3")) for label in labels]
        assert len({b - a for a, b in zip(steps, steps[1:], strict=False)}) == 1


@pytest.mark.parametrize("log_x", [True, False])
async def test_charts_given_one_x_range_line_their_events_up(log_x):
    """The loss chart started at step 1 and the others at 10, so the event lines of the grid
    did not line up: given the run's range, they do."""
    app = ChartApp(count=2)
    async with app.run_test(size=(100, 40)) as pilot:
        first, second = app.query(MetricChart)
        marks = [Marker(40, "t1"), Marker(2_500, "t3")]
        span = (1, 6_000) if log_x else (0, 6_000)
        rows = [
            text_of(
                await drawn(pilot, first, train_and_test(1, 1), marks, log_x=log_x, x_range=span)
            ),
            text_of(
                await drawn(pilot, second, train_and_test(10, 10), marks, log_x=log_x, x_range=span)
            ),
        ]
        columns = [
            [line.find(label) for label in ("t1", "t3") for line in lines if label in line]
            for lines in rows
        ]
        assert columns[0] == columns[1] and min(columns[0]) > 0
        assert tick_labels(rows[0]) == tick_labels(rows[1])


def test_labels_too_close_together_are_joined_not_dropped():
    labels = [(1.0, "t1"), (5.0, "t2"), (5.5, "✎"), (11.0, "t3"), (11.5, "t4")]
    assert merged_labels(labels, per_column=1.0) == [(1.0, "t1"), (5.0, "t2,✎"), (11.0, "t3,t4")]
    assert merged_labels(labels, per_column=0.1) == labels
    assert merged_labels([], per_column=1.0) == []


async def test_events_close_together_all_show():
    """t4 a few columns after t3 (4,450 vs 3,500 on a log axis) must not vanish."""
    app = ChartApp()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(MetricChart)
        marks = [Marker(3_500, "t3"), Marker(4_450, "t4")]
        lines = text_of(await drawn(pilot, chart, train_and_test(), marks))
        assert any("t3,t4" in line for line in lines), "\n".join(lines)


def test_glyphs_spread_over_the_axis_or_along_a_path():
    xs, ys = [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 20.0, 30.0, 40.0]
    at, values = glyph_points(xs, ys, 0.0, 4.0, count=4, offset=0.5)
    assert at == [0.5, 1.5, 2.5, 3.5] and values == [5.0, 15.0, 25.0, 35.0]
    at, _ = glyph_points(xs[2:], ys[2:], 0.0, 4.0, count=4, offset=0.5)
    assert at == [2.5, 3.5]  # only where the curve has data
    path = ([3.0, 1.0, 2.0, 0.5, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0])  # x goes back and forth
    at, values = glyph_points(*path, 0.5, 4.0, count=3, offset=0.5)
    assert list(zip(at, values, strict=True)) == [(1.0, 2.0), (2.0, 3.0), (0.5, 4.0)]


async def test_many_labelled_layers_keep_the_legend_to_two_rows_and_the_canvas_readable():
    """Eight layers' names (omnigrok's transformer) wrapped to four legend rows and left
    the α chart two canvas rows at 120x40; the legend now ends in … after two rows."""
    app = ChartApp()
    async with app.run_test(size=(60, 14)) as pilot:
        chart = app.query_one(MetricChart)
        names = [f"blocks.0.attn.{part}" for part in ("key", "query", "value", "out")]
        names += ["blocks.0.mlp_in", "blocks.0.mlp_out", "embed", "unembed"]
        curves = [
            Curve(name, series(10, 6_000, 50, lambda s, k=k: 2 + k / (1 + s / 1e3)), "cyan+")
            for k, name in enumerate(names)
        ]
        lines = text_of(await drawn(pilot, chart, curves, []))
        legend = [line for line in lines if "blocks.0" in line or "embed" in line]
        assert len(legend) == 2 and lines[1].rstrip().endswith("…"), lines[:4]
        assert lines[0].startswith("accuracy") and "┌" in lines[2]
