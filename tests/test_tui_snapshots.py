"""Snapshot tests of the grokterm TUI (pytest-textual-snapshot).

The lab is the fixed five-run lab of conftest.py (`tui_lab`: fixed timestamps, synthetic
metrics, a relative lab path so the header reads the same everywhere). The cursor blink is
stopped and every screenshot waits for the app's workers and chart redraws, so nothing
timed shows up in an image. Regenerate after an intended UI change with

    pytest tests/test_tui_snapshots.py --snapshot-update

and look at the report (snapshot_report.html) before committing the new SVGs.
"""

from __future__ import annotations

import pytest
from pilotkit import wait_for, workers_done
from textual.app import App
from textual.widgets import DataTable, Input, Static, TextArea

from grokterm.tui.app import GrokApp
from grokterm.tui.screens.dialogs import HelpScreen
from grokterm.tui.screens.monitor import MonitorScreen
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.screens.sweeps import SweepsScreen
from grokterm.tui.series import Series
from grokterm.tui.widgets.chart import Curve, Guide, Marker, MetricChart


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch):
    """A blinking cursor would make a screenshot depend on when it is taken."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None)


async def quiet(pilot) -> None:
    """Wait until no worker runs and one more frame has been drawn."""
    await workers_done(pilot.app)
    await pilot.pause()
    await workers_done(pilot.app)
    await pilot.pause()


async def runs_loaded(pilot, select: str | None = None) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
    table = app.screen.query_one("#runs", DataTable)
    await wait_for(pilot, lambda: table.row_count == 5, "the runs")
    if select is not None:
        table.move_cursor(row=table.get_row_index(select), animate=False)
    preview = app.screen.query_one("#preview-text", Static)
    wanted = select or app.screen.selected_id()
    await wait_for(pilot, lambda: str(preview.content).startswith(wanted), "the preview")
    await quiet(pilot)


def help_shown(app) -> bool:
    screen = app.screen
    return isinstance(screen, HelpScreen) and any(
        "command palette" in str(static.content) for static in screen.query(Static)
    )


def test_runs_screen(snap_compare, tui_lab):
    """The runs table of the fixed lab at 120x40, the grokking run selected."""
    lab, ids = tui_lab

    async def run_before(pilot):
        await runs_loaded(pilot, select=ids["grok"])

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


def test_runs_screen_narrow(snap_compare, tui_lab):
    """At 80x24 the preview moves under the table."""
    lab, ids = tui_lab

    async def run_before(pilot):
        await runs_loaded(pilot, select=ids["nanda"])

    assert snap_compare(GrokApp(lab), terminal_size=(80, 24), run_before=run_before)


async def scrolled_to_the_config_columns(pilot) -> None:
    """Scroll the runs table to its right end: the run id stays, the config columns show."""
    table = pilot.app.screen.query_one("#runs", DataTable)
    table.scroll_to(x=table.max_scroll_x, animate=False)
    await wait_for(pilot, lambda: table.scroll_x == table.max_scroll_x > 0, "the scroll")
    await quiet(pilot)


def test_runs_screen_config_columns(snap_compare, tui_lab):
    """120x40, scrolled right: the six most telling of the config fields that differ across
    the lab's runs (optim, then task, model, ...), beside the run ids."""
    lab, ids = tui_lab

    async def run_before(pilot):
        await runs_loaded(pilot, select=ids["grok"])
        await scrolled_to_the_config_columns(pilot)

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


def test_runs_screen_config_columns_narrow(snap_compare, tui_lab):
    """80x24, scrolled right: three config columns beside the run ids."""
    lab, ids = tui_lab

    async def run_before(pilot):
        await runs_loaded(pilot, select=ids["nanda"])
        await scrolled_to_the_config_columns(pilot)

    assert snap_compare(GrokApp(lab), terminal_size=(80, 24), run_before=run_before)


def test_help_screen(snap_compare, tui_lab):
    """? on the runs screen: its keys."""
    lab, _ = tui_lab

    async def run_before(pilot):
        await runs_loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: help_shown(pilot.app), "help")
        await quiet(pilot)

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


async def monitor_drawn(pilot, note: str) -> None:
    """Open the selected run's monitor and wait until its shown charts are drawn from every
    record read and its side pane holds `note`."""
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
    await quiet(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
    screen = app.screen
    charts = [chart for chart in screen.query(MetricChart) if chart.display]
    side = screen.query_one("#monitor-events", Static)
    await wait_for(pilot, lambda: note in str(side.content), "the notes")
    await wait_for(pilot, lambda: all(chart.curves for chart in charts), "chart data")
    tail = screen.tail

    def everything_read_and_drawn() -> bool:
        # The poller reads the JSON records, then the per-step loss column: a draw between
        # the two is of an x range without the column's first steps.
        column = tail.column_tail
        column_read = column is not None and column.steps_read >= column.steps_on_disk()
        return column_read and screen._drawn_version == tail.series.version

    await wait_for(pilot, everything_read_and_drawn, "the charts drawn from every record read")
    await wait_for(pilot, lambda: not any(chart._dirty for chart in charts), "chart redraws")
    await quiet(pilot)


def test_monitor_dashboard(snap_compare, recorded_lab):
    """The default monitor of a real finished run (recorded stream): accuracy, loss, HTSR α
    per layer with the α = 2 line and trap marks, spectral energy, weight norm and the slot
    of any other metric; events and the note beside them; no rate for an ended run."""
    lab, _ = recorded_lab

    async def run_before(pilot):
        await monitor_drawn(pilot, "dips below 2")

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


class ChartApp(App):
    """One chart as the monitor's HTSR panel draws it: curves with glyphs of their own, a
    reference line, events."""

    def compose(self):
        yield MetricChart("HTSR alpha", guides=(Guide(2.0, "α=2"),), id="alpha")

    def on_mount(self) -> None:
        chart = self.query_one(MetricChart)
        layers = [("embed", 6.0, "cyan+"), ("mlp", 5.0, "orange+"), ("unembed", 4.0, "green+")]
        curves = []
        for name, start, colour in layers:
            series = Series()
            for step in range(10, 6_001, 10):  # falls towards 2 around the grokking step
                series.add(step, 2.0 + (start - 2.0) / (1 + (step / 2_500) ** 3))
            curves.append(Curve(f"alpha/{name}", series, colour))
        chart.configure(log_x=True, smoothing=0.9, x_range=(1, 6_000))
        marks = [Marker(40, "t1"), Marker(300, "t2"), Marker(2_500, "t3"), Marker(4_450, "t4")]
        chart.show(curves, [*marks, Marker(1_000, "✎")], version=1)


def test_chart_with_events_reference_and_layers(snap_compare):
    """Event labels above the data and clear of the legend, which shows each curve's glyph
    and the alpha = 2 line; x from step 1 to 6k with 1-2-5 ticks; EMA over steps."""

    async def run_before(pilot):
        chart = pilot.app.query_one(MetricChart)
        await wait_for(pilot, lambda: chart.curves and not chart._dirty, "the chart's redraw")
        await quiet(pilot)

    assert snap_compare(ChartApp(), terminal_size=(110, 24), run_before=run_before)


def test_monitor_dashboard_narrow(snap_compare, recorded_lab):
    """At 80x24, two charts a page: `c` three times from the last slot shows α and spectral
    energy side by side, the events below."""
    lab, _ = recorded_lab

    async def run_before(pilot):
        await monitor_drawn(pilot, "dips below 2")
        await pilot.press("c", "c", "c")
        screen = pilot.app.screen
        charts = [chart for chart in screen.query(MetricChart) if chart.display]
        await wait_for(pilot, lambda: not any(chart._dirty for chart in charts), "the page")
        await quiet(pilot)


# --- sweeps: the planted sweep of tests/sweepkit.py ------------------------------------------


async def sweep_diagram_shown(pilot, keys: tuple[str, ...] = ()) -> None:
    """W, enter on the one sweep, then `keys`; waits for the diagram and its side panel."""
    from test_tui_sweeps import open_diagram

    screen = await open_diagram(pilot, "sweep-1")
    await pilot.press(*keys)
    side = screen.query_one("#sweep-side-text", Static)
    await wait_for(pilot, lambda: "optim.lr =" in str(side.content), "the side panel")
    await quiet(pilot)


def test_sweeps_list(snap_compare, sweep_lab):
    """W on the runs screen: the sweep, its grid, state, progress and outcomes so far."""
    lab, _ = sweep_lab

    async def run_before(pilot):
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        await pilot.press("W")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepsScreen), "the sweeps")
        table = app.screen.query_one("#sweeps", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the sweep's row")
        await quiet(pilot)

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


def test_sweep_phase_diagram(snap_compare, sweep_lab):
    """Outcomes in Liu et al.'s colours with their letters, the seeds of (1e-3, 1) disagreeing
    (G~, the cursor there, the side panel naming both outcomes), a cell training (…20%),
    queued cells (·), a crashed one (!), the legend under the grid."""
    lab, _ = sweep_lab

    async def run_before(pilot):
        await sweep_diagram_shown(pilot, ("right", "up"))

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


def test_sweep_numeric_view(snap_compare, sweep_lab):
    """v: coloured by t4 (mean over seeds) on a viridis ramp, min and max in the legend."""
    lab, _ = sweep_lab

    async def run_before(pilot):
        await sweep_diagram_shown(pilot, ("v",))

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)


def test_sweep_phase_diagram_monochrome_narrow(snap_compare, sweep_lab, monkeypatch):
    """80x24 under NO_COLOR: the diagram reads by its letters alone (C G M X, ~, …, ·, !),
    the cursor as [ ], the side panel below."""
    lab, _ = sweep_lab
    monkeypatch.setenv("NO_COLOR", "1")  # read (and removed) by the App when it is made

    async def run_before(pilot):
        await sweep_diagram_shown(pilot, ("right", "up"))

    assert snap_compare(GrokApp(lab), terminal_size=(80, 24), run_before=run_before)
