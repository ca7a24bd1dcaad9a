"""The Sweeps screens: the list, the phase diagram of a planted sweep (tests/sweepkit.py),
moving over it, opening, marking and comparing its cells, its views and axes, its export,
and the sweeps in the shared snapshot."""

from __future__ import annotations

import sys
import types

import pytest
from pilotkit import wait_for, workers_done
from sweepkit import LRS, WDS
from textual.widgets import DataTable, Input, Static

from grokterm.lab import write_json_atomic
from grokterm.lab.records import Outcome, RunView, SweepAxis, SweepRecord
from grokterm.sweep import diagram as grid
from grokterm.sweep.control import SweepView
from grokterm.tui.app import GrokApp
from grokterm.tui.screens.compare import CompareScreen
from grokterm.tui.screens.dialogs import Prompt
from grokterm.tui.screens.monitor import MonitorScreen
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.screens.sweeps import SweepScreen, SweepsScreen
from grokterm.tui.state import LabState
from grokterm.tui.widgets.phase_diagram import PhaseDiagram, draw, ticks

# --- the diagram as data ---------------------------------------------------------------------


def run(run_id: str, coords: dict, phase: str | None = None, **fields) -> RunView:
    summary = {"phase": phase} if phase else {}
    return RunView(id=run_id, coords=coords, summary=summary, status="finished", **fields)


def one_axis_sweep() -> SweepView:
    axis = SweepAxis(field="optim.weight_decay", values=[0.0, 0.5, 1.0])
    cells = [
        run("a", {"optim.weight_decay": 0.0}, "memorization"),
        run("b", {"optim.weight_decay": 0.5}, "grokking"),
        run("c", {"optim.weight_decay": 1.0}, "comprehension"),
    ]
    record = SweepRecord(id="sweep-1", axes=[axis], cells=["a", "b", "c"])
    return SweepView(record, cells, "finished")


def test_seeds_give_a_majority_outcome_and_a_tie_goes_to_the_lowest_seed():
    def point(*phases):
        return grid.Point(tuple(run(f"r{i}", {"seed": i}, p) for i, p in enumerate(phases)))

    two_to_one = point("grokking", "comprehension", "grokking")
    assert (two_to_one.outcome, two_to_one.agreeing, two_to_one.decided) == (
        Outcome.GROKKING, 2, 3
    )  # fmt: skip
    assert two_to_one.disagrees
    tie = point("comprehension", "grokking")
    assert tie.outcome == Outcome.COMPREHENSION and tie.disagrees
    assert not point("memorization", "memorization").disagrees
    assert point(None, None).outcome is None


def test_a_one_axis_sweep_draws_one_row_with_its_letters():
    sweep = one_axis_sweep()
    diagram = grid.build(sweep, "optim.weight_decay", None, {})
    lines = draw(diagram, grid.OUTCOME_VIEW, (1, 0), frozenset(), 80, 12).plain.splitlines()
    words = [line.split() for line in lines]
    assert ["M", "[", "G", "]", "C"] in words  # one row, the cursor on its middle cell
    assert ["0", "0.5", "1"] in words and ["optim.weight_decay"] in words
    assert "│" not in "\n".join(lines)  # no y axis


def test_more_than_two_axes_are_held_at_a_slice():
    axes = [
        SweepAxis(field="optim.lr", values=[1e-3, 1e-2]),
        SweepAxis(field="optim.weight_decay", values=[0.0, 1.0]),
        SweepAxis(field="task.p", values=[23, 97, 113]),
    ]
    record = SweepRecord(id="sweep-1", axes=axes)
    assert grid.axis_pairs(record) == [
        ("optim.lr", "optim.weight_decay"),
        ("optim.lr", "task.p"),
        ("optim.weight_decay", "task.p"),
    ]
    assert grid.slices(record, ["optim.lr", "optim.weight_decay"]) == [
        {"task.p": 23}, {"task.p": 97}, {"task.p": 113}
    ]  # fmt: skip
    assert grid.slices(record, ["optim.lr", "task.p"]) == [
        {"optim.weight_decay": 0.0}, {"optim.weight_decay": 1.0}
    ]  # fmt: skip


def test_axis_ticks_are_short_and_in_one_style():
    log_range = [1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2]
    assert ticks(log_range) == ["1e-4", "3.2e-4", "1e-3", "3.2e-3", "1e-2"]
    assert ticks([0.0, 2.0, 10.0]) == ["0", "2", "10"]
    assert ticks([[64], [32, 32]]) == ["[64]", "[32, 32]"]


# --- the screens -------------------------------------------------------------------------------


async def open_diagram(pilot, sweep_id: str) -> SweepScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
    await pilot.press("W")
    await wait_for(pilot, lambda: isinstance(app.screen, SweepsScreen), "the sweeps screen")
    table = app.screen.query_one("#sweeps", DataTable)
    await wait_for(pilot, lambda: table.row_count == 1, "the sweep's row")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), "the phase diagram")
    screen = app.screen
    await wait_for(pilot, lambda: screen.diagram is not None, "the diagram drawn")
    return screen


def side(screen: SweepScreen) -> str:
    return str(screen.query_one("#sweep-side-text", Static).content)


def diagram_text(screen: SweepScreen) -> str:
    widget = screen.query_one(PhaseDiagram)
    return widget.render().plain


def ids_at(screen: SweepScreen, x: int, y: int) -> list[str]:
    return screen.diagram.point(x, y).ids


async def test_the_sweeps_list_shows_each_sweep_with_its_state_and_outcomes(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        await pilot.press("W")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepsScreen), "the sweeps screen")
        table = app.screen.query_one("#sweeps", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the sweep's row")
        row = [str(cell) for cell in table.get_row(sweep_id)]
        assert row[:3] == [sweep_id, "planted", "liu-toy"]
        assert row[3] == "optim.lr (4) × optim.weight_decay (3) × seeds (2)"
        assert row[5] == "scheduling"
        assert row[7] == "3C 3G 4M 4X"  # the runs with an outcome, 14 of 24


async def test_arrows_move_over_cells_and_the_side_panel_follows(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        assert screen.query_one(PhaseDiagram).cursor == (0, 0)
        assert "optim.lr = 0.0001" in side(screen) and "memorization" in side(screen)
        await pilot.press("right", "up")
        assert screen.query_one(PhaseDiagram).cursor == (1, 1)
        text = side(screen)
        assert "optim.lr = 0.001" in text and "optim.weight_decay = 1" in text
        assert "2 seeds · grokking (1 of 2 decided), a tie: the lowest seed's" in text
        assert "seeds disagree: 1 grokking, 1 comprehension" in text
        for run_id in ids_at(screen, 1, 1):
            assert run_id in text
        await pilot.press("left", "left", "down", "down")  # held at the edges
        assert screen.query_one(PhaseDiagram).cursor == (0, 0)


async def test_the_diagram_shows_letters_disagreement_training_and_ended_cells(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        rows = [line.split("│", 1) for line in diagram_text(screen).splitlines() if "│" in line]
        cells = {label.strip(): row.split() for label, row in rows if label.strip()}
        # Largest weight decay on top; the cursor's brackets sit around (0, 0).
        assert cells["5"] == ["C", "…20%", "·", "!"]
        assert cells["1"] == ["G", "G~", "X", "·"]
        assert cells["0"] == ["[", "M", "]", "M", "X", "·"]


async def test_enter_opens_the_monitor_of_the_cells_run(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        await pilot.press("right", "up", "up")
        wanted = ids_at(screen, 1, 2)[0]  # seed 0, the one training
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        assert app.screen.run_id == wanted
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back on the diagram")


async def test_marked_cells_are_compared(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        await pilot.press("up", "space", "right", "space")
        assert "●" in diagram_text(screen)
        wanted = ids_at(screen, 0, 1) + ids_at(screen, 1, 1)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), "compare")
        assert sorted(app.screen.run_ids) == sorted(wanted) and len(wanted) == 4


async def test_c_without_marks_compares_the_seeds_of_the_cell(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        await pilot.press("space", "space")  # marked and unmarked again
        assert not screen.marked
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), "compare")
        assert app.screen.run_ids == ids_at(screen, 0, 0)


async def test_v_colours_by_numbers_with_a_legend(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        await pilot.press("v")
        assert screen.view == "t4"
        text = diagram_text(screen)
        assert "t4, mean over seeds: 155 " in text and " 850" in text  # min and max
        rows = [line.split("│", 1) for line in text.splitlines() if "│" in line]
        cells = {label.strip(): row.split() for label, row in rows if label.strip()}
        assert cells["1"][:2] == ["850", "475"]  # means over seeds: (900+800)/2, (700+250)/2
        await pilot.press("v")
        assert screen.view == grid.GAP and "t4 − t2, mean over seeds" in diagram_text(screen)
        for _ in grid.NUMERIC_VIEWS[1:]:
            await pilot.press("v")
        assert screen.view == grid.OUTCOME_VIEW


async def test_x_swaps_the_axes_and_keeps_the_cursor_on_its_cell(sweep_lab):
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        await pilot.press("right", "right", "up")  # lr 1e-2, wd 1
        before = ids_at(screen, 2, 1)
        await pilot.press("x")
        assert screen.diagram.x_axis.field == "optim.weight_decay"
        assert screen.diagram.y_axis.field == "optim.lr"
        assert screen.query_one(PhaseDiagram).cursor == (1, 2)
        assert ids_at(screen, 1, 2) == before
        lines = diagram_text(screen).splitlines()
        assert lines[0].strip() == "optim.lr"
        assert any(line.strip() == "optim.weight_decay" for line in lines)


async def test_e_exports_the_sweep_through_the_export_module(sweep_lab, tmp_path, monkeypatch):
    lab, sweep_id = sweep_lab
    calls = []

    def export_sweep(lab_arg, sweep_arg, path):
        calls.append((lab_arg.root, sweep_arg, path))
        return path

    module = types.ModuleType("grokterm.sweep.export")
    module.export_sweep = export_sweep
    monkeypatch.setitem(sys.modules, "grokterm.sweep.export", module)
    app = GrokApp(lab, export_dir=tmp_path / "out")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_diagram(pilot, sweep_id)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, Prompt), "the path prompt")
        assert app.screen.query_one(Input).value == str(tmp_path / "out" / f"{sweep_id}.md")
        await pilot.press("enter")
        await wait_for(pilot, lambda: calls, "the export")
        await workers_done(app)
        assert calls == [(lab.root, sweep_id, tmp_path / "out" / f"{sweep_id}.md")]


async def test_without_the_export_module_e_says_so(sweep_lab, monkeypatch):
    lab, sweep_id = sweep_lab
    monkeypatch.setitem(sys.modules, "grokterm.sweep.export", None)  # import fails
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_diagram(pilot, sweep_id)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, Prompt), "the path prompt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.last_problem is not None, "a message")
        assert app.last_problem[0] == "Sweep export is not in this version of grokterm"


async def test_a_cell_that_ends_changes_colour_from_the_shared_snapshot(sweep_lab):
    """The diagram follows the poller's snapshot: a training cell's end shows up without the
    screen reading the lab."""
    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_diagram(pilot, sweep_id)
        running = ids_at(screen, 1, 2)[0]
        write_json_atomic(
            lab.run_dir(running) / "status.json",
            {"status": "finished", "step": 1000, "total": 1000,
             "summary": {"phase": "grokking", "t2": 100, "t4": 600}},
        )  # fmt: skip
        app.refresh_lab()
        await wait_for(
            pilot, lambda: screen.diagram.point(1, 2).outcome == Outcome.GROKKING, "the end"
        )
        rows = [line.split("│", 1) for line in diagram_text(screen).splitlines() if "│" in line]
        cells = {label.strip(): row.split() for label, row in rows if label.strip()}
        assert cells["5"][1] == "G…"  # its other seed is still queued


# --- the shared snapshot ------------------------------------------------------------------------


def test_sweeps_are_read_with_the_runs_only_when_the_lab_log_changed(sweep_lab, monkeypatch):
    """The lab log file is read once per refresh that finds it changed, for all its tables."""
    from grokterm.lab.store import AtomicJSONStorage

    lab, sweep_id = sweep_lab
    reads = []
    read = AtomicJSONStorage.read
    monkeypatch.setattr(AtomicJSONStorage, "read", lambda self: reads.append(1) or read(self))
    state = LabState(lab)
    assert state.refresh()
    change = state.take_changes()
    assert change.sweeps == {sweep_id} and len(reads) == 1
    sweep = state.snapshot.sweeps[sweep_id]
    assert sweep.state == "scheduling" and len(sweep.cells) == 24
    state.refresh()
    assert not state.take_changes().sweeps and len(reads) == 1  # nothing new, nothing read
    training = state.snapshot.sweeps[sweep_id].record.cells[LRS.index(1e-3) * 6 + 4]
    assert state.view(training).status == "running"
    status = lab.run_dir(training) / "status.json"
    write_json_atomic(status, {**__import__("json").loads(status.read_text()), "step": 500})
    state.refresh()
    assert state.take_changes().sweeps == {sweep_id} and len(reads) == 1
    lab.add_note("a note on the lab")  # a write reads the file too: count the refresh alone
    before = len(reads)
    state.refresh()
    assert len(reads) == before + 1


@pytest.mark.parametrize("wd", WDS)
def test_every_planted_cell_is_placed(sweep_lab, wd):
    lab, sweep_id = sweep_lab
    state = LabState(lab)
    state.refresh()
    diagram = grid.build(state.snapshot.sweeps[sweep_id], "optim.lr", "optim.weight_decay", {})
    y = WDS.index(wd)
    assert all(len(diagram.point(x, y).runs) == 2 for x in range(len(LRS)))


async def test_the_sweeps_screens_footers_show_help_and_quit_at_120_columns(sweep_lab):
    from test_tui_runs import footer_shows

    lab, sweep_id = sweep_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        await pilot.press("W")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepsScreen), "the sweeps")
        await footer_shows(pilot, {"?", "q"}, "on the sweeps list")
        await pilot.press("escape")
        await open_diagram(pilot, sweep_id)
        await footer_shows(pilot, {"?", "q"}, "on the phase diagram")
