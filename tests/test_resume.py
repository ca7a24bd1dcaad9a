"""Stop or kill a detached run, resume it, and get the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from grokterm import launcher, live
from grokterm.lab import Lab
from grokterm.lab.stream import loss_column_path, read_column, read_records

SETTINGS = [
    "--set", "task.p=23",
    "--set", "schedule.steps=1500",
    "--set", "schedule.eval_every=20",
    "--set", "schedule.checkpoint_every=100",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def grokterm(lab: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grokterm", "--lab", str(lab), *args],
        capture_output=True, text=True, env=ENV, check=check, timeout=300,
    )


DEADLINE = 300.0  # for a stuck run only: CI runs this beside the rest of the suite


def pause_at_step(lab: Lab, run_id: str, step: int) -> int:
    """Suspend the run (SIGSTOP) once it reaches ``step``: however fast the machine, it is
    still training when the test stops or kills it. Returns its pid."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        status = live.read_status(lab, run_id)
        if (status.step or 0) >= step:
            os.kill(status.pid, signal.SIGSTOP)
            assert live.read_status(lab, run_id).status == "running", "it ended"
            return status.pid
        time.sleep(0.1)
    raise AssertionError(f"{run_id} did not reach step {step}")


def final_weights(lab: Lab, run_id: str) -> dict[str, torch.Tensor]:
    path = lab.run_dir(run_id) / "checkpoints" / "step-000001500.pt"
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    lab_dir = tmp_path_factory.mktemp("reference")
    grokterm(lab_dir, "run", "modadd-mlp", *SETTINGS)
    return final_weights(Lab(lab_dir), "modadd-mlp-1")


def start_detached(lab_dir: Path) -> str:
    return grokterm(lab_dir, "run", "modadd-mlp", *SETTINGS, "--detach").stdout.strip()


def assert_complete_series(lab: Lab, run_id: str) -> None:
    stream = lab.run_dir(run_id) / "metrics.jsonl"
    steps = [record["step"] for record in read_records(stream)]
    assert steps == list(range(0, 1501))
    # The loss of every step once, in its column; the JSON lines hold each probe step once.
    losses = read_column(loss_column_path(stream))
    assert len(losses) == 1501 and losses[0] != losses[0]  # no loss at step 0 (NaN)
    assert all(math.isfinite(loss) for loss in losses[1:])
    json_steps = [json.loads(line)["step"] for line in stream.read_text().splitlines()]
    assert json_steps == list(range(0, 1501, 20))


def assert_same(weights: dict, reference: dict) -> None:
    assert weights.keys() == reference.keys()
    for name in weights:
        assert torch.equal(weights[name], reference[name]), name


def test_stopped_run_resumes_bit_identically(tmp_path, reference):
    lab = Lab(tmp_path)
    run_id = start_detached(tmp_path)
    pause_at_step(lab, run_id, 450)
    grokterm(tmp_path, "stop", run_id)  # stop wakes it (SIGCONT) to checkpoint and end
    view = launcher.wait_until_done(lab, run_id, timeout=DEADLINE)
    assert view.status == "stopped"
    stopped_at = view.step
    assert 450 <= stopped_at < 1500

    assert "resuming" in grokterm(tmp_path, "resume", run_id).stdout
    view = launcher.wait_until_done(lab, run_id, timeout=DEADLINE)
    assert view.status == "finished", view
    assert_complete_series(lab, run_id)
    assert_same(final_weights(lab, run_id), reference)
    kinds = [event.kind for event in lab.events(run_id)]
    assert len(kinds) == len(set(kinds)), "events were duplicated by the resume"


def test_killed_run_shows_crashed_then_resumes_bit_identically(tmp_path, reference, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the resumed process inherits this one's env
    lab = Lab(tmp_path)
    run_id = start_detached(tmp_path)
    pid = pause_at_step(lab, run_id, 350)
    os.kill(pid, signal.SIGKILL)
    view = launcher.wait_until_done(lab, run_id, timeout=DEADLINE)
    assert view.status == "crashed"
    assert view.step >= 350

    launcher.resume(lab, run_id)
    view = launcher.wait_until_done(lab, run_id, timeout=DEADLINE)
    assert view.status == "finished", view
    assert_complete_series(lab, run_id)
    assert_same(final_weights(lab, run_id), reference)


def test_only_stopped_or_crashed_runs_resume(tmp_path):
    grokterm(tmp_path, "run", "modadd-mlp", "--set", "task.p=11", "--set", "schedule.steps=20")
    result = grokterm(tmp_path, "resume", "1", check=False)
    assert result.returncode == 2
    assert "only stopped or crashed runs resume" in result.stderr
    status = json.loads(grokterm(tmp_path, "show", "1", "--json").stdout)["status"]
    assert status == "finished"
