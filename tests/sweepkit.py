"""A sweep lab with planted outcomes, written through the lab-log module (no training), for
tests/test_tui_sweeps.py and the sweep snapshots in tests/test_tui_snapshots.py.

4 learning rates × 3 weight decays × 2 seeds = 24 cells. By (lr index, wd index):

    wd 2 │  C C    …  ·    ·  ·    !  ‖      (1, 2): seed 0 training at 400/1000, seed 1 queued
    wd 1 │  G G    G  C    X  X    ·  ·      (1, 1): the seeds disagree (grokking, comprehension)
    wd 0 │  M M    M  M    X  X    ·  ·      (3, 2): one crashed, one stopped
           lr 0    lr 1    lr 2    lr 3
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from grokterm.lab import Lab, write_json_atomic
from grokterm.processes import process_start_ticks

FIXED_TIME = "2026-01-15T09:00:00+00:00"
LRS = [1e-4, 1e-3, 1e-2, 1e-1]
WDS = [0.0, 1.0, 5.0]
TOTAL = 1000
# (lr index, wd index) -> per seed: an outcome (with t2, t4) or a status
PLAN = {
    (0, 0): [("memorization", 300, None), ("memorization", 320, None)],
    (1, 0): [("memorization", 200, None), ("memorization", 210, None)],
    (2, 0): [("confusion", None, None), ("confusion", None, None)],
    (0, 1): [("grokking", 200, 900), ("grokking", 220, 800)],
    (1, 1): [("grokking", 150, 700), ("comprehension", 150, 250)],
    (2, 1): [("confusion", None, None), ("confusion", None, None)],
    (0, 2): [("comprehension", 100, 150), ("comprehension", 110, 160)],
    (1, 2): ["running", "queued"],
    (3, 2): ["crashed", "stopped"],
}


def sweep_axes() -> list[dict]:
    return [
        {"field": "optim.lr", "values": LRS},
        {"field": "optim.weight_decay", "values": WDS},
        {"field": "seed", "values": [0, 1], "replicate": True},
    ]


def build_sweep_lab(root: Path, monkeypatch, live_pid: int) -> tuple[Lab, str]:
    """The planted sweep above; its scheduler and its training cell are `live_pid`."""
    lab = Lab(root)
    rows = []
    for lr in LRS:
        for wd in WDS:
            for seed in (0, 1):
                config = {
                    "seed": seed,
                    "optim": {"lr": lr, "weight_decay": wd},
                    "schedule": {"steps": TOTAL},
                }
                coords = {"optim.lr": lr, "optim.weight_decay": wd, "seed": seed}
                fields = {"name": "planted", "preset": "liu-toy", "config": config, "tags": []}
                rows.append((coords, fields))
    definition = {"name": "planted", "base": "liu-toy", "preset": "liu-toy", "parallel": 2}
    with monkeypatch.context() as patch:
        patch.setattr("grokterm.lab.store.now_iso", lambda: FIXED_TIME)
        record, runs = lab.create_sweep({**definition, "axes": sweep_axes()}, rows)
        by_place = {
            (LRS.index(run.coords["optim.lr"]), WDS.index(run.coords["optim.weight_decay"]),
             run.coords["seed"]): run.id
            for run in runs
        }  # fmt: skip
        for (x, y), seeds in PLAN.items():
            for seed, plan in enumerate(seeds):
                plant(lab, by_place[(x, y, seed)], plan, live_pid)
    lab.update_sweep(
        record.id, scheduler_pid=live_pid, scheduler_started=process_start_ticks(live_pid)
    )
    return lab, record.id


def plant(lab: Lab, run_id: str, plan, live_pid: int) -> None:
    if plan == "queued":
        return
    if plan == "running":
        lab.update_run(run_id, status="running", pid=live_pid, device="cpu")
        write_json_atomic(
            lab.run_dir(run_id) / "status.json",
            {
                "status": "running", "pid": live_pid, "host": None, "device": "cpu",
                "heartbeat": time.time() + 3600.0,  # fresh for the whole test
                "step": 400, "total": TOTAL, "latest": {"train_acc": 0.9, "test_acc": 0.3},
            },
        )  # fmt: skip
        return
    if plan in ("crashed", "stopped"):
        lab.update_run(run_id, status=plan, step=100, reason=f"{plan} (planted)", summary={})
        return
    outcome, t2, t4 = plan
    test_acc = 1.0 if t4 else 0.1
    events = []
    if t2 is not None:
        events.append({"step": t2, "kind": "t2", "detail": "memorized", "thresholds": {}})
    if t4 is not None:
        events.append({"step": t4, "kind": "t4", "detail": "generalized", "thresholds": {}})
    detail = f"{outcome}: planted"
    events.append({"step": TOTAL, "kind": "outcome", "detail": detail, "thresholds": {}})
    lab.add_events(run_id, events)
    summary = {"t2": t2, "t4": t4, "phase": outcome, "train_acc": 1.0, "test_acc": test_acc}
    lab.update_run(run_id, status="finished", step=TOTAL, summary=summary)


@pytest.fixture
def sweep_lab(tmp_path, monkeypatch, idle_process):
    """(lab, sweep id) of build_sweep_lab at the relative path ./lab."""
    monkeypatch.chdir(tmp_path)
    return build_sweep_lab(Path("lab"), monkeypatch, live_pid=idle_process.pid)
