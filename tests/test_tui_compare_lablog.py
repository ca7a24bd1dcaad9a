"""Pilot tests of the compare and lab-log screens on a lab of two real, finished runs.

The two runs ((a+b) mod 23, 300 steps, differing only in optim.lr) train side by side in
subprocesses once per module; every test then drives the TUI against that lab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pilotkit import wait_for, workers_done
from rich.text import Text
from textual.widgets import DataTable, Input, Static

from grokterm.lab import Lab
from grokterm.tui.app import GrokApp
from grokterm.tui.messages import OpenCompare
from grokterm.tui.screens.compare import CompareScreen, loss_vs_norm
from grokterm.tui.screens.dialogs import HelpScreen, Prompt
from grokterm.tui.screens.lablog import LabLogScreen, parse_time
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.series import RunSeries

SHORT = [
    "--set",
    "task.p=23",
    "--set",
    "schedule.steps=300",
    "--set",
    "schedule.eval_every=20",
    "--set",
    "schedule.checkpoint_every=100",
]
WAIT = 300.0  # for a stuck process only: a shared machine; never a timing assertion


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, str, str]:
    """(lab path, id of the lr=1e-3 run, id of the lr=3e-3 run), both finished."""
    lab_path = tmp_path_factory.mktemp("compare-lab") / "lab"
    env = {k: v for k, v in os.environ.items() if k not in ("GROKTERM_LAB", "GROKTERM_PRESETS")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    base = [sys.executable, "-m", "grokterm", "--lab", str(lab_path), "run", "modadd-mlp", *SHORT]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd in (base, [*base, "--set", "optim.lr=3e-3"])
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, out
    runs = Lab(lab_path).list_runs()
    assert [run.status for run in runs] == ["finished", "finished"]
    by_lr = {run.config["optim"]["lr"]: run.id for run in runs}
    return lab_path, by_lr[1e-3], by_lr[3e-3]


async def settle(app: GrokApp, pilot, seconds: float = 0.3) -> None:
    """Let workers finish, their results land, and the charts' redraw timers fire."""
    await workers_done(app)
    await pilot.pause()
    await pilot.pause(seconds)
    await workers_done(app)
    await pilot.pause()


async def compare_loaded(pilot, runs: int = 2) -> CompareScreen:
    """The compare screen is up and its first poll has landed: diff, phases and a curve per
    run on every chart."""

    def loaded() -> bool:
        screen = pilot.app.screen
        if not isinstance(screen, CompareScreen) or screen.comparison is None:
            return False
        charts = [screen.query_one(f"#cmp-{name}") for name in ("accuracy", "norm")]
        return (
            screen.query_one("#compare-phases", DataTable).row_count > 0
            and all(len(chart.curves) == runs for chart in charts)
            and bool(screen.query_one("#cmp-extra").curves)
        )

    await wait_for(pilot, loaded, "the compare screen's data")
    await settle(pilot.app, pilot)
    return pilot.app.screen


def cell_text(value) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def column_labels(table: DataTable) -> list[str]:
    return [column.label.plain for column in table.ordered_columns]


# --- compare -------------------------------------------------------------------------------


async def test_compare_shows_both_runs_the_config_diff_and_phase_timings(two_runs, tmp_path):
    lab_path, slow, fast = two_runs
    lab = Lab(lab_path)
    app = GrokApp(lab, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.post_message(OpenCompare([slow, fast]))
        screen = await compare_loaded(pilot)
        status = str(screen.query_one("#compare-status", Static).content)
        assert slow in status and fast in status

        diff = screen.query_one("#compare-diff", DataTable)
        assert column_labels(diff) == ["field", slow, fast]
        assert [row.key.value for row in diff.ordered_rows] == ["optim.lr"]  # not task.p
        assert [cell_text(c) for c in diff.get_row("optim.lr")] == ["optim.lr", "0.001", "0.003"]

        phases = screen.query_one("#compare-phases", DataTable)
        assert column_labels(phases)[1:] == [slow, fast]
        for run_id in (slow, fast):
            t2 = lab.get_run(run_id).summary["t2"]
            assert t2 is not None
            assert phases.get_cell("t2", run_id) == str(t2)
            assert cell_text(phases.get_cell("status", run_id)) == "finished"
            assert phases.get_cell("train_acc", run_id) == "1.000"

        # Every chart got one curve per run, coloured by the run's position.
        accuracy = screen.query_one("#cmp-accuracy")
        assert [curve.label for curve in accuracy.curves] == [slow, fast]
        assert accuracy.curves[0].color != accuracy.curves[1].color
        assert len(screen.query_one("#cmp-norm").curves) == 2
        assert screen.query_one("#cmp-extra").curves  # a metric both runs share


async def test_compare_keys(two_runs, tmp_path):
    lab_path, slow, fast = two_runs
    app = GrokApp(Lab(lab_path), export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.post_message(OpenCompare([slow, fast]))
        screen = await compare_loaded(pilot)
        accuracy, extra = screen.query_one("#cmp-accuracy"), screen.query_one("#cmp-extra")

        await pilot.press("l")
        await settle(app, pilot)
        assert screen.log_x is False and accuracy.log_x is False

        await pilot.press("S")
        await settle(app, pilot)
        assert screen.smoothing_index == 1 and accuracy.smoothing > 0

        first = screen.extra_metric
        extras = screen.extra_names()
        assert first in extras and len(extras) > 1
        await pilot.press("m")
        await settle(app, pilot)
        assert screen.extra_metric == extras[1]
        assert screen.extra_metric in extra.title

        await pilot.press("t")
        await settle(app, pilot)
        assert screen.split == "train"
        assert "train" in accuracy.title

        await pilot.press("u")  # loss against weight norm
        await settle(app, pilot)
        lu_train = screen.query_one("#cmp-lu-train")
        assert lu_train.display and not accuracy.display
        assert [curve.label for curve in lu_train.curves] == [slow, fast]
        await pilot.press("u")
        await settle(app, pilot)
        assert accuracy.display and not lu_train.display

        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to compare")

        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), "the export prompt")
        assert isinstance(app.screen, Prompt)
        await pilot.press("escape")  # cancel the export
        await wait_for(pilot, lambda: app.screen is screen, "back to compare")

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
        await settle(app, pilot)
    assert not list(tmp_path.glob("*.md"))


async def test_compare_from_marked_runs_at_80x24(two_runs, tmp_path):
    lab_path, slow, fast = two_runs
    app = GrokApp(Lab(lab_path), export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
        runs = app.screen
        table = runs.query_one("#runs", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, "both runs in the table")
        await pilot.press("space", "down", "space")  # mark both runs
        await wait_for(pilot, lambda: runs.marked == {slow, fast}, "both runs marked")
        await pilot.press("c")
        screen = await compare_loaded(pilot)
        assert sorted(screen.run_ids) == sorted([slow, fast])
        assert screen.has_class("-narrow")
        charts = screen.query_one("#compare-charts")
        assert charts.region.width >= 70  # one chart per row, full width
        for chart_id in ("#cmp-accuracy", "#cmp-loss"):
            assert screen.query_one(chart_id).region.height >= 8
        app.export_screenshot()  # renders without error

        body = screen.query_one("#compare-body")
        assert body.max_scroll_y > 0  # the stack scrolls
        await pilot.press("end")
        await settle(app, pilot)
        phases = screen.query_one("#compare-phases", DataTable)
        assert screen.region.contains_region(phases.region)
        assert phases.get_cell("t2", fast) != "–"


def test_loss_vs_norm_pairs_probe_steps():
    series = RunSeries()
    series.extend(
        [
            {"step": 0, "train_loss": 3.0, "weight_norm": 50.0},
            {"step": 1, "loss": 2.9},
            {"step": 10, "train_loss": 1.0, "weight_norm": 45.0},
            {"step": 20, "train_loss": 0.5},  # no norm probe at this step: skipped
        ]
    )
    trajectory = loss_vs_norm(series, "train_loss")
    assert trajectory.steps == [50.0, 45.0]
    assert trajectory.values == [3.0, 1.0]


# --- lab log -------------------------------------------------------------------------------


def entry_rows(screen: LabLogScreen) -> list[str]:
    table = screen.query_one("#lablog", DataTable)
    return [row.key.value for row in table.ordered_rows]


async def open_lab_log(app: GrokApp, pilot) -> LabLogScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
    await settle(app, pilot)
    await pilot.press("L")

    def loaded() -> bool:
        screen = app.screen
        return isinstance(screen, LabLogScreen) and bool(screen.shown) and (
            screen.query_one("#lablog", DataTable).row_count == len(screen.shown)
        )

    await wait_for(pilot, loaded, "the lab log's entries")
    await settle(app, pilot)
    return app.screen


async def test_lab_log_lists_runs_notes_and_events_in_time_order(two_runs, tmp_path):
    lab_path, slow, fast = two_runs
    lab = Lab(lab_path)
    lab.add_note("lr 1e-3 memorizes later", run_id=slow, step=40)
    app = GrokApp(lab, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lab_log(app, pilot)
        keys = entry_rows(screen)
        assert f"run:{slow}:created" in keys and f"run:{fast}:ended" in keys
        assert any(key.startswith("note:") for key in keys)
        events = [key for key in keys if key.startswith("event:")]
        assert len(events) == len(lab.events())
        assert any(f":{fast}:" in key and key.endswith(":t2:0") for key in events)
        times = [parse_time(entry.time) for entry in screen.shown]
        assert times == sorted(times)
        assert keys.index(f"run:{slow}:created") < keys.index(events[0])
        assert keys.index(f"run:{slow}:ended") > keys.index(f"run:{slow}:created")
        # The newest entry is highlighted on open.
        table = screen.query_one("#lablog", DataTable)
        assert table.cursor_row == table.row_count - 1

        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), "the filter box")
        await pilot.press("t", "2")
        await wait_for(pilot, lambda: screen.filter_text == "t2", "the filter")
        await settle(app, pilot)
        shown = entry_rows(screen)
        assert 0 < len(shown) < len(keys)
        assert all("t2" in entry.haystack() for entry in screen.shown)
        await pilot.press("escape")  # clears and closes the filter, stays on the screen
        await wait_for(pilot, lambda: entry_rows(screen) == keys, "every entry again")
        assert app.screen is screen and screen.filter_text == ""

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")


async def test_lab_log_exports_the_runs_of_marked_entries(two_runs, tmp_path):
    lab_path, slow, fast = two_runs
    app = GrokApp(Lab(lab_path), export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_lab_log(app, pilot)
        table = screen.query_one("#lablog", DataTable)
        keys = entry_rows(screen)
        for key in (f"run:{slow}:created", f"run:{fast}:created"):
            table.move_cursor(row=keys.index(key))
            await pilot.pause()
            await pilot.press("space")
            await wait_for(pilot, lambda key=key: key in screen.marked, f"{key} marked")
        assert screen.marked == {f"run:{slow}:created", f"run:{fast}:created"}
        assert screen.runs_to_export() == sorted([slow, fast])
        assert table.get_cell(f"run:{slow}:created", "mark") == "●"

        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), "the export prompt")
        assert isinstance(app.screen, Prompt)
        await pilot.press("enter")  # accept the default path in export_dir
        await wait_for(pilot, lambda: list(tmp_path.glob("*.md")), "the export file")
        await settle(app, pilot)
        written = list(tmp_path.glob("*.md"))
        assert len(written) == 1, written
        markdown = written[0].read_text()
        assert slow in markdown and fast in markdown


async def test_lab_log_adds_a_lab_note_and_opens_a_run(two_runs, tmp_path):
    lab_path, slow, fast = two_runs
    lab = Lab(lab_path)
    app = GrokApp(lab, export_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_lab_log(app, pilot)
        app.export_screenshot()  # renders at 80x24
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), "the note prompt")
        assert isinstance(app.screen, Prompt)
        app.screen.query_one(Input).value = "try wd 0.3 next"
        await pilot.press("enter")

        def written() -> list[dict]:
            return [note for note in lab.notes() if note["text"] == "try wd 0.3 next"]

        await wait_for(pilot, written, "the note written")
        notes = written()
        assert len(notes) == 1 and notes[0]["run"] is None
        key = f"note:{notes[0]['id']}"
        await wait_for(pilot, lambda: key in entry_rows(screen), "the note in the lab log")
        assert app.screen is screen
        entry = next(e for e in screen.shown if e.key == key)
        assert entry.run is None and entry.source == "note"
        assert entry_rows(screen)[-1] == entry.key  # the newest entry comes last

        table = screen.query_one("#lablog", DataTable)
        table.move_cursor(row=entry_rows(screen).index(entry.key))
        await pilot.pause()
        await pilot.press("enter")  # a lab note has no run to open
        await pilot.pause()
        assert app.screen is screen

        table.move_cursor(row=entry_rows(screen).index(f"run:{fast}:ended"))
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "MonitorScreen", "a monitor")
        await settle(app, pilot)
        assert app.screen.run_id == fast


# --- compare on a lab written directly: live timings, markers, LU view, export ------------


async def open_compare(app: GrokApp, pilot, run_ids: list[str]) -> CompareScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
    await settle(app, pilot)
    app.post_message(OpenCompare(run_ids))
    return await compare_loaded(pilot)


async def test_compare_shows_a_running_runs_timings_and_each_runs_phase_markers(
    compare_lab, tmp_path
):
    lab, ids = compare_lab
    done, live = ids["done"], ids["live"]
    app = GrokApp(lab, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(app, pilot, [done, live])
        phases = screen.query_one("#compare-phases", DataTable)
        # The running run has no end summary yet: its marks come from its events, as in ls.
        assert phases.get_cell("t2", live) == "150" and phases.get_cell("t1", live) == "60"
        assert cell_text(phases.get_cell("status", live)) == "running"
        assert phases.get_cell("t2", done) == "250"

        status = str(screen.query_one("#compare-status", Static).content)
        assert f"1 ━━ {done}" in status and f"2 ━━ {live}" in status
        for chart_id in ("#cmp-accuracy", "#cmp-loss", "#cmp-norm", "#cmp-extra"):
            labels = {marker.label for marker in screen.query_one(chart_id).markers}
            assert {"t1·1", "t2·1", "t4·1", "t1·2", "t2·2"} == labels, chart_id
        for chart_id in ("#cmp-accuracy", "#cmp-loss"):  # tall enough to read at 120x40
            assert screen.query_one(chart_id).region.height >= 15


async def test_compare_lu_view_shows_the_direction_of_time(compare_lab, tmp_path):
    lab, ids = compare_lab
    app = GrokApp(lab, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(app, pilot, [ids["done"], ids["live"]])
        await pilot.press("u")
        chart = screen.query_one("#cmp-lu-test")
        await wait_for(pilot, lambda: chart.display and len(chart.curves) == 2, "the LU view")
        assert "time runs ○ → ●" in chart.title
        chart.rebuild()
        drawn = chart.render().plain
        assert drawn.count("○") >= 1 and drawn.count("●") >= 1  # each path's start and end


async def test_compare_exports_one_comparison_with_its_charts_in_a_folder(compare_lab, tmp_path):
    lab, ids = compare_lab
    done, live = ids["done"], ids["live"]
    app = GrokApp(lab, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_compare(app, pilot, [done, live])
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), "the export prompt")
        await pilot.press("enter")  # the default path in export_dir
        await wait_for(pilot, lambda: list(tmp_path.glob("*.md")), "the export file")
        await settle(app, pilot)
        assert app.screen is screen
    [target] = tmp_path.glob("*.md")
    markdown = target.read_text()
    assert f"| field | {done} | {live} |" in markdown
    assert "| optim.lr | 0.001 | 0.003 |" in markdown
    assert "| t2 memorized | 250 | 150 |" in markdown
    folder = tmp_path / f"{target.stem}_files"
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 6 and not list(tmp_path.glob("*.png"))
    for png in pngs:
        assert f"]({target.stem}_files/{png.name})" in markdown
