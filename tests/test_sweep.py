"""Sweeps: the grid and its validation, the scheduler's limit on cells training at once, and
a sweep that ends with every cell finished after its scheduler and a cell are SIGKILLed."""

from __future__ import annotations

import json
import os
import signal

import pytest
from faultkit import SHORT, grokterm, kill_if_running, one_line_error, wait_for, wait_for_step

from grokterm import launcher, processes
from grokterm.errors import ConfigError
from grokterm.lab import Lab
from grokterm.lab.records import ACTIVE
from grokterm.live import live_view
from grokterm.sweep import control, scheduler, spec

TINY = ["task.p=23", "schedule.steps=200", "schedule.eval_every=20", "schedule.checkpoint_every=50"]


def test_ranges_and_lists_expand_in_grid_order_first_axis_slowest():
    sweep, cells = spec.from_command_line(
        "modadd-mlp",
        ["optim.lr=logspace(-4, -2, 3)", "model.hidden=[64], [32, 32]"],
        seeds=2,
    )
    assert [axis.field for axis in sweep.axes] == ["optim.lr", "model.hidden", "seed"]
    assert sweep.axes[0].values == [1e-4, 1e-3, 1e-2]
    assert sweep.axes[2].replicate
    assert len(cells) == 12
    assert cells[0].coords == {"optim.lr": 1e-4, "model.hidden": [64], "seed": 0}
    assert cells[1].coords["seed"] == 1 and cells[2].coords["model.hidden"] == [32, 32]
    assert cells[-1].experiment.optim.lr == 1e-2
    assert cells[-1].experiment.model.hidden == [32, 32] and cells[-1].experiment.seed == 1


@pytest.mark.parametrize(
    ("assignment", "values"),
    [
        ("optim.weight_decay=linspace(0, 1, 3)", [0.0, 0.5, 1.0]),
        ("task.p=range(11, 20, 4)", [11, 15, 19]),
        ("optim.weight_decay=0, 1e-2", [0.0, 0.01]),
    ],
)
def test_an_axis_reads_ranges_and_comma_lists(assignment, values):
    sweep, _ = spec.from_command_line("modadd-mlp", [assignment])
    assert sweep.axes[0].values == values


@pytest.mark.parametrize(
    ("grid", "says"),
    [
        (["optim.nope=1,2"], "--grid optim.nope: no such config field"),
        (["optim.lr=1e-3,-1"], "the cell optim.lr=-1.0: optim.lr"),
        (["optim.lr=1e-3,1e-3"], "a value is repeated"),
        (["task.p=linspace(1, 2, 3)"], "takes whole numbers"),
        (["optim.lr=logspace(-4, -2)"], "expected START, STOP and a whole COUNT"),
        (["optim.lr=1e-3,,1e-2"], "expected values separated by commas"),
        (["optim.lr"], "expected FIELD=VALUE"),
        ([], "at least one --grid"),
    ],
)
def test_a_bad_grid_is_one_clear_error(grid, says):
    with pytest.raises(
        ConfigError, match=says.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        spec.from_command_line("modadd-mlp", grid)


def test_too_many_cells_are_refused_before_any_is_built():
    grid = ["optim.lr=logspace(-5, -1, 101)", "optim.weight_decay=linspace(0, 1, 101)"]
    with pytest.raises(ConfigError, match="10201 cells: more than 10000"):
        spec.from_command_line("modadd-mlp", grid)


def test_a_sweep_file_names_base_grid_seeds_and_budget(tmp_path):
    path = tmp_path / "wd.toml"
    path.write_text(
        '[sweep]\nbase = "modadd-mlp"\nparallel = 2\nseeds = 2\nsteps = 300\n'
        '[sweep.set]\n"task.p" = 23\n'
        '[sweep.grid]\n"optim.weight_decay" = [0.0, 1.0]\n"optim.lr" = "logspace(-3, -2, 2)"\n'
    )
    sweep, cells = spec.from_file(path)
    assert (sweep.name, sweep.parallel, len(cells)) == ("wd", 2, 8)
    assert {cell.experiment.schedule.steps for cell in cells} == {300}
    assert {cell.experiment.task.p for cell in cells} == {23}


def test_the_cli_refuses_a_bad_grid_with_one_line_and_writes_nothing(tmp_path):
    lab = tmp_path / "lab"
    line = one_line_error(grokterm(lab, "sweep", "modadd-mlp", "--grid", "optim.lr=1e-3,0"))
    assert "optim.lr" in line and "greater than 0" in line
    assert not lab.exists()


def test_cells_are_ordinary_runs_tagged_with_the_sweep_and_their_coordinates(tmp_path):
    lab = Lab(tmp_path / "lab")
    sweep, cells = spec.from_command_line("modadd-mlp", ["optim.weight_decay=0,1"], TINY)
    record = control.create(lab, sweep, cells)
    runs = [lab.get_run(run_id) for run_id in record.cells]
    assert [run.coords for run in runs] == [
        {"optim.weight_decay": 0.0},
        {"optim.weight_decay": 1.0},
    ]
    assert {run.sweep for run in runs} == {record.id} and {run.status for run in runs} == {"queued"}
    toml = (lab.run_dir(runs[1].id) / "experiment.toml").read_text()
    assert "weight_decay = 1.0" in toml
    assert lab.resolve_sweep("1") == lab.resolve_sweep(sweep.name) == record.id == "sweep-1"


def test_the_scheduler_never_trains_more_cells_than_parallel(tmp_path, monkeypatch):
    """The scheduler runs here, its cells as real detached workers; at every start the test
    counts, on its own, the cells still training."""
    lab = Lab(tmp_path / "lab")
    sweep, cells = spec.from_command_line(
        "modadd-mlp", ["optim.weight_decay=0,0.5,1,2"], TINY, parallel=2
    )
    record = control.create(lab, sweep, cells)
    training_at_start = []
    real_start = launcher.start

    def counting_start(lab_, run_id, resume=False, threads=None):
        views = [live_view(lab, lab.get_run(cell)) for cell in record.cells]
        training_at_start.append(sum(v.status in ACTIVE and v.pid is not None for v in views))
        assert threads == max(1, (os.cpu_count() or 1) // 2)
        real_start(lab_, run_id, resume, threads)

    monkeypatch.setattr(launcher, "start", counting_start)
    try:
        assert scheduler.schedule(lab, record.id, poll=0.05) == 0
    finally:
        kill_if_running(lab)
    assert len(training_at_start) == 4 and max(training_at_start) <= 1
    finished = [launcher.wait_until_done(lab, run_id, 120).status for run_id in record.cells]
    assert finished == ["finished"] * 4
    assert control.view(lab, lab.get_sweep(record.id)).state == "finished"


def test_a_sigkilled_scheduler_and_cell_end_with_every_cell_finished_after_resume(tmp_path):
    root = tmp_path / "lab"
    lab = Lab(root)
    steps = ["--set", "schedule.steps=600"]
    result = grokterm(
        root, "sweep", "modadd-mlp", *SHORT, *steps, "--grid", "optim.weight_decay=0,1,2"
    )
    assert result.returncode == 0, result.stderr.decode()
    sweep = lab.get_sweep("sweep-1")
    first = sweep.cells[0]
    try:
        status = wait_for_step(lab, first, 200)
        os.kill(sweep.scheduler_pid, signal.SIGKILL)
        wait_for(lambda: not control.scheduler_alive(sweep), "the scheduler to die")
        os.kill(status.pid, signal.SIGKILL)
        wait_for(lambda: not processes.pid_alive(status.pid), "the cell to die")
        shown = json.loads(grokterm(root, "sweep", "show", "1", "--json").stdout)
        assert shown["state"] == "interrupted"
        assert [row["status"] for row in shown["table"]] == ["crashed", "queued", "queued"]

        resumed = grokterm(root, "sweep", "resume", "sweep-1")
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert "1 stopped or crashed cell(s) requeued" in resumed.stdout.decode()
        for run_id in sweep.cells:
            launcher.wait_until_done(lab, run_id, 240)
        wait_for(
            lambda: control.view(lab, lab.get_sweep("sweep-1")).state == "finished",
            "the sweep to finish",
        )
    finally:
        kill_if_running(lab)
    shown = json.loads(grokterm(root, "sweep", "show", "1", "--json").stdout)
    assert [row["status"] for row in shown["table"]] == ["finished"] * 3
    assert [row["step"] for row in shown["table"]] == [600] * 3
    again = grokterm(root, "sweep", "resume", "1")
    assert "nothing to resume" in one_line_error(again)
