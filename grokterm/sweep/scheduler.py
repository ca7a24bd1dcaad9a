"""The sweep scheduler: a process of its own (like a run's worker, it outlives the TUI and
the SSH link) that keeps at most `parallel` cells training and starts queued cells as
others end. Cells are ordinary runs started through the launcher; the scheduler holds no
state the lab log does not: killed at any moment, `grokterm sweep resume` carries on.

    python -m grokterm.sweep.scheduler --lab LAB SWEEP_ID
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import filelock

from grokterm import launcher
from grokterm.errors import GrokError
from grokterm.lab import Lab
from grokterm.lab.records import ACTIVE, RunRecord, RunStatus
from grokterm.live import live_view

POLL_SECONDS = 0.5


def is_waiting(record: RunRecord) -> bool:
    """Queued and never handed to a process: the scheduler's to start."""
    return record.status == RunStatus.QUEUED and record.pid is None


def threads_per_cell(parallel: int) -> int:
    """One torch thread per cell unless the cores outnumber the cells (two threads per cell
    on a 2-core machine run slower than one: they fight over the cores)."""
    return max(1, (os.cpu_count() or 1) // parallel)


def lock_path(lab: Lab, sweep_id: str) -> Path:
    return lab.root / "sweeps" / f"{sweep_id}.lock"


def schedule(lab: Lab, sweep_id: str, poll: float = POLL_SECONDS) -> int:
    """Start waiting cells while fewer than `parallel` train; return when none waits and
    none trains, or when the sweep is asked to stop. One scheduler per sweep: a second
    one leaves at once (returns 1)."""
    path = lock_path(lab, sweep_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        print(f"sweep {sweep_id} already has a scheduler", file=sys.stderr)
        return 1
    try:
        return _loop(lab, sweep_id, poll)
    finally:
        lock.release()


def _loop(lab: Lab, sweep_id: str, poll: float) -> int:
    sweep = lab.get_sweep(sweep_id)
    threads = threads_per_cell(sweep.parallel)
    while not sweep.stop_requested:
        records = {record.id: record for record in lab.list_runs()}
        cells = [records[run_id] for run_id in sweep.cells if run_id in records]
        waiting = [cell for cell in cells if is_waiting(cell)]
        training = [
            cell for cell in cells if not is_waiting(cell) and live_view(lab, cell).status in ACTIVE
        ]
        if not waiting and not training:
            return 0
        for cell in waiting[: max(0, sweep.parallel - len(training))]:
            _start(lab, cell, threads)
        time.sleep(poll)
        sweep = lab.get_sweep(sweep_id)
    return 0


def _start(lab: Lab, cell: RunRecord, threads: int) -> None:
    """A cell that cannot start is marked crashed by the launcher; the sweep goes on."""
    try:
        launcher.start(lab, cell.id, resume=cell.started is not None, threads=threads)
    except GrokError as exc:
        print(f"cell {cell.id}: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grokterm-sweep-scheduler")
    parser.add_argument("--lab", required=True)
    parser.add_argument("sweep_id")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return schedule(Lab(Path(args.lab)), args.sweep_id)
    except GrokError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
