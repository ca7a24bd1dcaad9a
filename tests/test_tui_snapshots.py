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
from textual.widgets import DataTable, Input, Static, TextArea

from grokterm.tui.app import GrokApp
from grokterm.tui.screens.dialogs import HelpScreen
from grokterm.tui.screens.monitor import MonitorScreen
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.widgets.chart import MetricChart


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


def test_monitor_of_a_finished_run(snap_compare, tui_lab):
    """The monitor of the finished grokking run: four charts, events, notes."""
    lab, ids = tui_lab

    async def run_before(pilot):
        app = pilot.app
        await runs_loaded(pilot, select=ids["grok"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        charts = list(app.screen.query(MetricChart))
        side = app.screen.query_one("#monitor-events", Static)
        await wait_for(pilot, lambda: "classic grokking curve" in str(side.content), "the notes")
        await wait_for(pilot, lambda: all(chart.curves for chart in charts), "chart data")
        screen = app.screen
        await wait_for(
            pilot,
            lambda: screen._drawn_version == screen.tail.series.version,
            "the charts drawn from every record read",
        )
        await wait_for(pilot, lambda: not any(chart._dirty for chart in charts), "chart redraws")
        await quiet(pilot)

    assert snap_compare(GrokApp(lab), terminal_size=(120, 40), run_before=run_before)
