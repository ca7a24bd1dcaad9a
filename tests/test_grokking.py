"""End to end: one real run through the CLI that must grok, and be detected as grokking.

(a+b) mod 31, 45% of the pairs for training, an MLP over 64-d embeddings, AdamW lr 1e-2,
wd 1, betas (0.9, 0.98), full batch. Measured on 2 CPU cores, seeds 0-5: train acc >= 0.99
at the first probe (t2 = 50) and test acc >= 0.95 at t4 = 3,700-6,300 (seed 0: 5,200;
float64: 4,550), so t4 - t2 is several times the default grokking gap of 1,000 steps and
9,000 steps leave room for t4 to come later. About 10 s at ~900 steps/s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grokterm.lab.stream import read_records

STEPS = 9000
SETTINGS = [
    "device=cpu",
    "seed=0",
    "task.p=31",
    "task.op=+",
    "task.train_fraction=0.45",
    "model.embed_dim=64",
    "model.hidden=[128]",
    "optim.kind=adamw",
    "optim.lr=1e-2",
    "optim.weight_decay=1.0",
    "optim.betas=[0.9, 0.98]",
    f"schedule.steps={STEPS}",
    "schedule.batch_size=0",
    "schedule.eval=every",
    "schedule.eval_every=50",
    "schedule.checkpoint_every=0",
]


def grokterm_command() -> list[str]:
    script = Path(sys.executable).with_name("grokterm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "grokterm"]


def run_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GROKTERM_PRESETS", "GROKTERM_LAB")}
    env["OMP_NUM_THREADS"] = "1"  # two torch threads fight the rest of the suite for 2 cores
    return subprocess.run(
        [*grokterm_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_modular_addition_groks_and_is_detected(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    overrides = [arg for setting in SETTINGS for arg in ("--set", setting)]
    # A limit for a stuck run only: idle ~2 min, beside a second copy of the suite ~10.
    done = run_cli("--lab", str(lab), "run", "modadd-mlp", *overrides, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr

    shown = run_cli("--lab", str(lab), "show", "1", "--json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["status"] == "finished"
    assert view["step"] == STEPS

    events = view["events"]
    marks = {event["kind"]: event["step"] for event in events if event["kind"] != "outcome"}
    assert {"t1", "t2", "t3", "t4"} <= set(marks), events
    t1, t2, t3, t4 = (marks[k] for k in ("t1", "t2", "t3", "t4"))
    assert t1 <= t2 < t3 <= t4
    assert t2 < t4
    gap = events[0]["thresholds"]["grokking_gap"]
    assert t4 - t2 > gap, f"t2={t2}, t4={t4}: not a grokking gap"
    assert t2 <= 500, "memorization should come early"
    outcomes = [event for event in events if event["kind"] == "outcome"]
    assert len(outcomes) == 1
    assert outcomes[0]["detail"].startswith("grokking")
    assert outcomes[0]["step"] == t4
    assert view["summary"]["phase"] == "grokking"
    assert (view["summary"]["t2"], view["summary"]["t4"]) == (t2, t4)
    assert view["summary"]["test_acc"] >= 0.95

    run_dir = Path(view["dir"])
    records = read_records(run_dir / "metrics.jsonl")
    assert [record["step"] for record in records] == list(range(STEPS + 1))
    probes = {record["step"]: record for record in records if "test_acc" in record}
    assert sorted(probes) == list(range(0, STEPS + 1, 50))
    assert probes[t2]["train_acc"] >= 0.99 and probes[t2 - 50]["train_acc"] < 0.99
    assert probes[t4]["test_acc"] >= 0.95 and probes[t4 - 50]["test_acc"] < 0.95
    assert probes[t2]["test_acc"] < 0.5, "at t2 the model has memorized, not generalized"
    assert (run_dir / "checkpoints" / f"step-{STEPS:09d}.pt").is_file()
