"""Sweep throughput, as a ratio measured in one run (DESIGN §1.6: no timed assertions in
tests): the same cells trained (a) by a sweep, `parallel` at a time with its share of the
threads each, and (b) one after another by hand, `grokterm run` per cell with torch's
default threads, as a shell loop would. Also the CPU use of the machine's cores while the
sweep trains (from /proc/stat), to show that it keeps them busy.

    python benchmarks/bench_sweep.py [--cells 36] [--steps 1500] [--parallel 2]
        [--preset modadd-mlp]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def grokterm(lab: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "grokterm", "--lab", str(lab), *args],
        capture_output=True, text=True, env=ENV, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"grokterm {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def weight_decays(cells: int) -> list[str]:
    return [f"{0.01 * k:.2f}" for k in range(cells)]


def bench_sweep(lab: Path, args: argparse.Namespace) -> tuple[float, float]:
    from grokterm.lab import Lab
    from grokterm.sweep import control

    grid = "optim.weight_decay=" + ",".join(weight_decays(args.cells))
    busy0, total0 = cpu_ticks()
    start = time.perf_counter()
    grokterm(
        lab, "sweep", args.preset, "--grid", grid, "--set", "task.p=23",
        "--steps", str(args.steps), "--parallel", str(args.parallel),
    )  # fmt: skip
    while control.views(Lab(lab))[0].state != "finished":
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    busy1, total1 = cpu_ticks()
    return seconds, (busy1 - busy0) / (total1 - total0)


def bench_by_hand(lab: Path, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    for wd in weight_decays(args.cells):
        grokterm(
            lab, "run", args.preset, "--set", "task.p=23", "--set", f"optim.weight_decay={wd}",
            "--set", f"schedule.steps={args.steps}",
        )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=36)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--preset", default="modadd-mlp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sweep_seconds, busy = bench_sweep(Path(tmp) / "sweep", args)
        print(f"sweep: {args.cells} cells in {sweep_seconds:.1f} s, cores {busy:.0%} busy")
        hand_seconds = bench_by_hand(Path(tmp) / "by-hand", args)
        print(f"by hand: {args.cells} cells in {hand_seconds:.1f} s")
    print(
        f"sweep of {args.cells} cells x {args.steps} steps ({args.preset}, parallel "
        f"{args.parallel}, {os.cpu_count()} cores): {args.cells / sweep_seconds * 60:.1f} "
        f"cells/min against {args.cells / hand_seconds * 60:.1f} by hand one after another "
        f"(x{hand_seconds / sweep_seconds:.2f}); cores {busy:.0%} busy during the sweep"
    )


if __name__ == "__main__":
    main()
