"""Sweeps as the lab knows them: create one (its cells are queued runs), start its scheduler
in the background, stop it, resume it, and read where it stands. No torch here."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from grokterm import launcher
from grokterm.lab import Lab, LabError
from grokterm.lab.records import ACTIVE, RESUMABLE, RunView, SweepRecord
from grokterm.live import live_views
from grokterm.processes import pid_alive, process_start_ticks, spawn_detached
from grokterm.sweep.scheduler import is_waiting
from grokterm.sweep.spec import Cell, SweepSpec


def create(lab: Lab, spec: SweepSpec, cells: list[Cell]) -> SweepRecord:
    """Record the sweep and its cells (queued runs, each with its experiment.toml)."""
    sweep_fields = spec.model_dump(mode="json")
    rows = []
    for cell in cells:
        config, tags = launcher.run_fields(cell.experiment)
        fields = {"name": spec.name, "preset": spec.preset, "config": config, "tags": tags}
        rows.append((cell.coords, fields))
    record, runs = lab.create_sweep(sweep_fields, rows)
    for run, cell in zip(runs, cells, strict=True):
        launcher.write_experiment_file(lab, run.id, cell.experiment)
    return record


def start_scheduler(lab: Lab, sweep_id: str) -> int:
    """Start the sweep's scheduler in a session of its own; returns its pid."""
    log_dir = lab.root / "sweeps"
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "grokterm.sweep.scheduler", "--lab", str(lab.root), sweep_id]
    pid = spawn_detached(command, log_dir / f"{sweep_id}.log")
    lab.update_sweep(
        sweep_id,
        scheduler_pid=pid,
        scheduler_started=process_start_ticks(pid),
        host=socket.gethostname(),
        stop_requested=False,
    )
    return pid


def launch(lab: Lab, spec: SweepSpec, cells: list[Cell]) -> SweepRecord:
    record = create(lab, spec, cells)
    start_scheduler(lab, record.id)
    return lab.get_sweep(record.id)


def scheduler_alive(sweep: SweepRecord) -> bool | None:
    """None when the scheduler runs on another host sharing the lab (it cannot be seen)."""
    if sweep.host not in (None, socket.gethostname()):
        return None
    return pid_alive(sweep.scheduler_pid, sweep.scheduler_started)


@dataclass(frozen=True)
class SweepView:
    """A sweep as it stands: its record, its cells' live views and a one-word state."""

    record: SweepRecord
    cells: list[RunView]
    state: str  # scheduling, stopping, stopped, interrupted, finished

    @property
    def counts(self) -> Counter[str]:
        return Counter(str(cell.status) for cell in self.cells)

    def progress(self) -> str:
        counts = self.counts
        order = ("finished", "running", "queued", "stopped", "crashed", "diverged")
        return ", ".join(f"{counts[s]} {s}" for s in order if counts[s])


def view(lab: Lab, sweep: SweepRecord, views: dict[str, RunView] | None = None) -> SweepView:
    views = views if views is not None else {v.id: v for v in live_views(lab)}
    cells = [views[run_id] for run_id in sweep.cells if run_id in views]
    return SweepView(sweep, cells, _state(sweep, cells))


def _state(sweep: SweepRecord, cells: list[RunView]) -> str:
    alive = scheduler_alive(sweep)
    if alive or alive is None:
        return "stopping" if sweep.stop_requested else "scheduling"
    if any(cell.status in ACTIVE and not is_waiting(cell) for cell in cells):
        # The scheduler is gone but cells still train (it was killed, or stop is under way).
        return "stopping" if sweep.stop_requested else "interrupted"
    if sweep.stop_requested:
        return "stopped"
    if any(is_waiting(cell) for cell in cells):
        return "interrupted"
    return "finished"


def views(lab: Lab) -> list[SweepView]:
    run_views = {v.id: v for v in live_views(lab)}
    return [view(lab, sweep, run_views) for sweep in lab.list_sweeps()]


def stop(lab: Lab, sweep_id: str, timeout: float = 30.0) -> list[str]:
    """Stop the scheduler first (so that it starts nothing more), then every training cell;
    returns the ids of the cells asked to stop."""
    if view(lab, lab.get_sweep(sweep_id)).state == "finished":
        raise LabError(f"{sweep_id} has finished: nothing to stop")
    sweep = lab.update_sweep(sweep_id, stop_requested=True)
    if scheduler_alive(sweep):
        os.kill(sweep.scheduler_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while scheduler_alive(sweep) and time.monotonic() < deadline:
            time.sleep(0.05)
    stopped = []
    for cell in view(lab, sweep).cells:
        if cell.status in ACTIVE and not is_waiting(cell):
            try:
                launcher.stop(lab, cell.id)
                stopped.append(cell.id)
            except LabError:
                pass  # it ended meanwhile
    return stopped


def resume(lab: Lab, sweep_id: str) -> dict[str, Any]:
    """Requeue the stopped and crashed cells and start a scheduler for the queued ones."""
    sweep = lab.get_sweep(sweep_id)
    if scheduler_alive(sweep):
        raise LabError(f"{sweep_id} is already being scheduled (pid {sweep.scheduler_pid})")
    cells = view(lab, sweep).cells
    requeued = [cell.id for cell in cells if cell.status in RESUMABLE]
    if not requeued and not any(is_waiting(cell) for cell in cells):
        raise LabError(
            f"{sweep_id}: every cell has ended (finished or diverged); nothing to resume"
        )
    for run_id in requeued:
        launcher.requeue(lab, run_id)
    start_scheduler(lab, sweep_id)
    return {"requeued": requeued}
