"""Throughput of `grokterm run modadd-mlp` over a bare PyTorch loop, as a ratio from one run.

The bare loop trains the same model on the same data with the same optimizer and nothing
else: no probes, no logging, no `.item()`. The grokterm side is the real CLI in a
subprocess with its default probes on; its steps/s is measured inside the training loop
(start-up and imports excluded), as the run records it. The two alternate a few times and
the medians are compared, so a machine that slows down mid-run hurts both sides alike.

    python benchmarks/bench_throughput.py [--steps 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from grokterm.engine.loop import build_session
from grokterm.presets import load_experiment

PRESET = "modadd-mlp"


def bare_loop_steps_per_second(steps: int) -> float:
    _, experiment = load_experiment(PRESET, [f"schedule.steps={steps}"])
    session = build_session(experiment)
    model, optimizer, data = session.model, session.optimizer, session.data
    loss_fn = torch.nn.functional.cross_entropy
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(model(data.train_x), data.train_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def grokterm_steps_per_second(steps: int, lab: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "grokterm",
        "--lab",
        str(lab),
        "run",
        PRESET,
        "--set",
        f"schedule.steps={steps}",
    ]
    subprocess.run(command, check=True, capture_output=True)
    runs = json.loads(
        subprocess.run(
            [sys.executable, "-m", "grokterm", "--lab", str(lab), "ls", "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return runs[-1]["summary"]["steps_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as lab:
        for i in range(args.repeats):
            bare.append(bare_loop_steps_per_second(args.steps))
            ours.append(grokterm_steps_per_second(args.steps, Path(lab)))
            print(f"round {i + 1}: bare {bare[-1]:.1f} steps/s, grokterm {ours[-1]:.1f} steps/s")
    ratio = statistics.median(ours) / statistics.median(bare)
    print(
        f"{PRESET}, {args.steps} steps x {args.repeats}: bare loop {statistics.median(bare):.1f} "
        f"steps/s, grokterm run {statistics.median(ours):.1f} steps/s, "
        f"ratio {ratio:.3f} (target >= 0.90)"
    )


if __name__ == "__main__":
    main()
