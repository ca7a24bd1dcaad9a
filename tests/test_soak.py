"""Soak: three runs at once, two of them SIGKILLed at random steps and resumed (one of them
twice), while two other processes write notes. Afterwards every run has finished with a
complete series and the weights of an uninterrupted run, and every note is there.

The kill steps come from GROKTERM_SOAK_SEED when set (else from the clock); the seed is
printed, so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from faultkit import (
    ENV,
    assert_complete_series,
    assert_lab_readable,
    grokterm,
    kill_if_running,
    kill_run,
    pause_at_step,
    pause_each_at_step,
    start_detached,
    wait_until_done,
)

from grokterm.lab import Lab

NOTES_PER_WRITER = 40
WRITER = textwrap.dedent(
    """
    import sys, time
    from grokterm.lab import Lab
    lab, name, runs = Lab(sys.argv[1]), sys.argv[2], sys.argv[3:]
    for n in range({count}):
        run = runs[n % (len(runs) + 1)] if n % (len(runs) + 1) < len(runs) else None
        lab.add_note(f"{{name}} note {{n}}", run_id=run, step=n if run else None)
        time.sleep(0.05)
    """
).format(count=NOTES_PER_WRITER)


def final_weights(lab: Lab, run_id: str) -> dict[str, torch.Tensor]:
    path = lab.run_dir(run_id) / "checkpoints" / "step-000001500.pt"
    return torch.load(path, weights_only=True)["model"]


def kill_and_resume(lab: Lab, run_id: str) -> None:
    kill_run(lab, run_id)
    resumed = grokterm(lab.root, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_soak_kills_resumes_and_concurrent_notes(tmp_path: Path):
    seed = int(os.environ.get("GROKTERM_SOAK_SEED") or time.time_ns() % 1_000_000)
    print(f"GROKTERM_SOAK_SEED={seed}")
    rng = random.Random(seed)
    lab_dir = tmp_path / "lab"
    lab = Lab(lab_dir)
    try:
        runs = [start_detached(lab_dir) for _ in range(3)]
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(lab_dir), name, *runs],
                env=ENV, stderr=subprocess.PIPE,
            )
            for name in ("alpha", "beta")
        ]  # fmt: skip
        twice, once = runs[:2]
        kill_steps = {run_id: rng.randint(120, 700) for run_id in (twice, once)}
        # Both victims are suspended at their steps as they reach them (SIGSTOP), so neither
        # can finish while the test deals with the other, however the machine is loaded.
        pause_each_at_step(lab, kill_steps)
        kill_and_resume(lab, twice)
        # The first victim dies again after its own resume.
        pause_at_step(lab, twice, kill_steps[twice] + rng.randint(100, 300))
        kill_and_resume(lab, twice)
        kill_and_resume(lab, once)
        for proc in writers:
            assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
        for run_id in runs:
            assert wait_until_done(lab, run_id).status == "finished", run_id
    finally:
        kill_if_running(lab)

    for run_id in runs:
        assert_complete_series(lab, run_id)
        kinds = [event.kind for event in lab.events(run_id)]
        assert len(kinds) == len(set(kinds)), (run_id, kinds)
    reference = final_weights(lab, runs[2])  # never interrupted; same config and seed
    for run_id in runs[:2]:
        weights = final_weights(lab, run_id)
        assert all(torch.equal(weights[k], reference[k]) for k in reference), run_id
    texts = {note["text"] for note in lab.notes()}
    expected = {f"{name} note {n}" for name in ("alpha", "beta") for n in range(NOTES_PER_WRITER)}
    assert expected <= texts, sorted(expected - texts)[:5]
    assert_lab_readable(lab_dir)
