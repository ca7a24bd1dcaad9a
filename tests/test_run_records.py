"""The two records of a run's state agree for every reader.

A run's process writes its end to status.json first and to the lab log second; readers take
a final status from status.json while the lab log still says running. These tests write the
in-between states by hand, so they hold whatever the machine's speed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grokterm import launcher, live, processes
from grokterm.engine.recorder import LabRecorder
from grokterm.lab import Lab, LabError, write_json_atomic
from grokterm.presets import load_experiment


def running_run(lab: Lab) -> str:
    preset, experiment = load_experiment("modadd-mlp", ["schedule.steps=600"])
    run_id = launcher.create_run(lab, experiment, preset)
    lab.update_run(run_id, status="running", pid=os.getpid())
    return run_id


def final_status(lab: Lab, run_id: str, pid: int, **extra) -> None:
    write_json_atomic(
        lab.run_dir(run_id) / "status.json",
        {
            "status": "crashed", "pid": pid, "pid_started": processes.process_start_ticks(pid),
            "host": socket.gethostname(), "device": "cpu", "heartbeat": time.time(),
            "step": 420, "total": 600, "reason": "no space left on the device", **extra,
        },
    )  # fmt: skip


def test_the_worker_writes_status_json_before_the_lab_log(tmp_path: Path, monkeypatch):
    lab = Lab(tmp_path / "lab")
    run_id = running_run(lab)
    recorder = LabRecorder(lab, run_id, load_experiment("modadd-mlp")[1])
    seen_in_status_json = []

    def update_run(run, **fields):
        seen_in_status_json.append(live.read_status(lab, run).status)

    monkeypatch.setattr(lab, "update_run", update_run)
    recorder.finished("crashed", 420, {"t2": 150}, "no space left on the device")
    assert seen_in_status_json == ["crashed"]  # already final when the lab log is written
    status = live.read_status(lab, run_id)
    assert status.summary == {"t2": 150} and status.ended


def test_a_final_status_json_is_the_truth_while_the_lab_log_lags(tmp_path: Path):
    """The worker has written its end to status.json and is about to write the lab log: its
    process still lives. Every reader already sees the end, with its summary."""
    lab = Lab(tmp_path / "lab")
    run_id = running_run(lab)
    final_status(lab, run_id, os.getpid(), summary={"t2": 150, "phase": "memorization"})
    view = live.live_view(lab, lab.get_run(run_id))
    assert view.status == "crashed"
    assert view.reason == "no space left on the device"
    assert view.step == 420 and view.summary["t2"] == 150
    listed = {v.id: v for v in live.live_views(lab)}[run_id]
    assert listed.status == "crashed" and listed.summary["phase"] == "memorization"
    # An export (or repair) writes that end into the lab log, summary included.
    assert live.record_ended_runs(lab) == [run_id]
    record = lab.get_run(run_id)
    assert record.status == "crashed" and record.summary["t2"] == 150


def test_wait_until_done_waits_for_the_process_to_exit(tmp_path: Path):
    lab = Lab(tmp_path / "lab")
    run_id = running_run(lab)
    ender = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        final_status(lab, run_id, ender.pid)
        view = launcher.wait_until_done(lab, run_id, timeout=0.5)  # it lives: not done
        assert view.status == "crashed" and ender.poll() is None
        ender.stdin.close()  # now it exits
        view = launcher.wait_until_done(lab, run_id, timeout=120)
        assert ender.poll() is not None and view.status == "crashed"
    finally:
        ender.kill()
        ender.wait()


def test_resume_waits_for_the_ended_process_to_exit(tmp_path: Path, idle_process):
    """Between recording its end and exiting, a run still holds its run lock: a resume in
    that moment would start a worker that leaves at once. It waits, then says so."""
    lab = Lab(tmp_path / "lab")
    run_id = running_run(lab)
    final_status(lab, run_id, idle_process.pid)
    with pytest.raises(LabError, match="has not exited"):
        launcher.wait_for_previous_process(lab, run_id, timeout=0.3)
    idle_process.kill()
    idle_process.wait()
    launcher.wait_for_previous_process(lab, run_id, timeout=120)  # returns: it is gone


def test_a_run_that_cannot_start_is_marked_crashed_not_left_queued(tmp_path: Path, monkeypatch):
    """Whoever launches (the CLI's run --detach, the launch form), a failed start ends the
    run as crashed with the reason, through the one door."""
    from grokterm.backends.local import LocalProcess

    def no_process(self, lab, run_id, resume=False, threads=None):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(LocalProcess, "start", no_process)
    lab = Lab(tmp_path / "lab")
    with pytest.raises(LabError, match="could not start the run process"):
        launcher.launch(lab, load_experiment("modadd-mlp")[1], "modadd-mlp")
    [record] = lab.list_runs()
    assert record.status == "crashed" and "Too many open files" in record.reason


def test_resume_says_whether_it_restarts_from_step_0(tmp_path: Path, monkeypatch):
    from grokterm.backends.local import LocalProcess
    from grokterm.lab.checkpoint_files import checkpoint_path

    started = []
    monkeypatch.setattr(LocalProcess, "start", lambda self, lab, run_id, resume=False, threads=None:
                        started.append((run_id, resume)))  # fmt: skip
    lab = Lab(tmp_path / "lab")
    run_id = running_run(lab)
    lab.update_run(run_id, status="stopped")
    assert launcher.resume(lab, run_id) is True  # no checkpoint: from step 0
    lab.update_run(run_id, status="stopped")
    checkpoint_path(lab.run_dir(run_id) / "checkpoints", 100).write_bytes(b"")
    assert launcher.resume(lab, run_id) is False
    assert started == [(run_id, True), (run_id, True)]
