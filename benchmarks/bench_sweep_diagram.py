"""The phase diagram's cost on a busy lab, as medians measured here (no timed asserts in tests).

A lab of 300 runs: 200 plain finished runs and a 10x10 sweep (100 cells: 40 finished with
an outcome, 30 training with a live status.json, 30 queued). Measured:

(a) LabState.refresh() when the lab log did not change (what the poller does every second
    while cells train), and the part of it the sweeps add (a SweepView per sweep from the
    run views just read, and which sweeps changed);
(b) one redraw of the diagram screen's content at 120x40: grid.build + draw + side panel;
(c) the same refresh when the lab log changed (all four tables read).

    python benchmarks/bench_sweep_diagram.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grokterm.lab import Lab, write_json_atomic
from grokterm.sweep import diagram as grid
from grokterm.sweep.control import view as sweep_view
from grokterm.tui.screens.sweeps import side_text
from grokterm.tui.state import LabState, changed_sweeps
from grokterm.tui.widgets.phase_diagram import draw

OUTCOMES = ["comprehension", "grokking", "memorization", "confusion"]


def build(root: Path, live_pid: int) -> tuple[Lab, str]:
    lab = Lab(root)
    config = {"schedule": {"steps": 1000}}
    for i in range(200):
        run = lab.create_run(f"plain{i}", None, config, [])
        lab.update_run(run.id, status="finished", step=1000, summary={"phase": "grokking"})
    lrs = [10 ** (-4 + i / 3) for i in range(10)]
    wds = [float(i) for i in range(10)]
    rows = [
        ({"optim.lr": lr, "optim.weight_decay": wd}, {"name": "cell", "config": config})
        for lr in lrs
        for wd in wds
    ]
    axes = [{"field": "optim.lr", "values": lrs}, {"field": "optim.weight_decay", "values": wds}]
    record, runs = lab.create_sweep({"name": "big", "base": "liu-toy", "axes": axes}, rows)
    for i, run in enumerate(runs):
        if i < 40:
            summary = {"phase": OUTCOMES[i % 4], "t2": 100 + i, "t4": 500 + 10 * i}
            lab.update_run(run.id, status="finished", step=1000, summary=summary)
        elif i < 70:
            lab.update_run(run.id, status="running", pid=live_pid)
            status = {"status": "running", "pid": live_pid, "heartbeat": time.time() + 3600,
                      "step": 10 * i, "total": 1000, "latest": {"test_acc": 0.5}}  # fmt: skip
            write_json_atomic(lab.run_dir(run.id) / "status.json", status)
    return lab, record.id


def median_ms(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    repeats = parser.parse_args().repeats
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lab, sweep_id = build(Path(tmp) / "lab", idle.pid)
            state = LabState(lab)
            state.refresh()
            views = state.snapshot.views
            records = [sweep.record for sweep in state.snapshot.sweeps.values()]

            def sweeps_part() -> None:
                new = {r.id: sweep_view(lab, r, views) for r in records}
                changed_sweeps(state.snapshot.sweeps, new, frozenset(views))

            refresh = median_ms(state.refresh, repeats)
            sweeps = median_ms(sweeps_part, repeats)
            sweep = state.snapshot.sweeps[sweep_id]

            def redraw() -> None:
                diagram = grid.build(sweep, "optim.lr", "optim.weight_decay", {})
                draw(diagram, grid.OUTCOME_VIEW, (4, 4), frozenset(), 90, 36)
                side_text(diagram, (4, 4), state)

            diagram_ms = median_ms(redraw, repeats)

            def log_changed() -> None:
                state._signature = ()  # as if the lab log had been written
                state.refresh()

            full = median_ms(log_changed, max(3, repeats // 5))
    finally:
        idle.kill()
        idle.wait()
    print(f"runs 300 (sweep of 100 cells, 30 training) · repeats {repeats}")
    print(f"refresh, lab log unchanged: {refresh:.1f} ms, of which sweeps {sweeps:.2f} ms")
    print(f"diagram redraw (build + draw + side panel, 10x10 at 90x36): {diagram_ms:.2f} ms")
    print(f"refresh, lab log changed (runs, events, notes, sweeps read): {full:.1f} ms")


if __name__ == "__main__":
    main()
