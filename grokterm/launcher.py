"""Start, stop and inspect run processes (the local-process backend).

The interface is small on purpose (create, start, stop, live status of a run directory) so
another backend can stand behind it later. No torch here: the TUI imports this module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grokterm.config import Experiment
from grokterm.lab import Lab, LabError
from grokterm.presets import experiment_to_toml

VANISHED = "its process ended without a final status (killed? out of memory?); resume it"
# A live run beats every second; a slow probe may skip some beats, a minute of silence
# means it is suspended or hung, which the views say (it stays 'running').
SILENT_AFTER_SECONDS = 60.0
FINAL_STATUSES = ("finished", "stopped", "crashed", "diverged")


def create_run(lab: Lab, experiment: Experiment, preset: str | None) -> str:
    """Record a queued run and write its exact config to runs/<id>/experiment.toml."""
    from grokterm.lab.store import write_bytes_atomic

    record = lab.create_run(
        experiment.name, preset, experiment.model_dump(mode="json"), list(experiment.tags)
    )
    write_bytes_atomic(
        lab.run_dir(record["id"]) / "experiment.toml", experiment_to_toml(experiment).encode()
    )
    return record["id"]


def worker_command(lab: Lab, run_id: str, resume: bool = False) -> list[str]:
    command = [sys.executable, "-m", "grokterm.engine.worker", "--lab", str(lab.root), run_id]
    return command + ["--resume"] if resume else command


def start_detached(lab: Lab, run_id: str, resume: bool = False) -> int:
    """Start the run in its own session (it outlives the terminal); stderr goes to run.log."""
    run_dir = lab.run_dir(run_id)
    with open(run_dir / "run.log", "ab") as log:
        process = subprocess.Popen(
            worker_command(lab, run_id, resume),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    lab.update_run(run_id, pid=process.pid, host=socket.gethostname())
    return process.pid


def read_status(lab: Lab, run_id: str) -> dict[str, Any]:
    try:
        return json.loads((lab.run_dir(run_id) / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _proc_stat(pid: int) -> list[str]:
    """Fields 3... of /proc/PID/stat (Linux); empty where there is no such file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2 :].split()  # the name in parentheses may hold spaces


def process_start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux); None where unknown."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19])  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int | None, started: int | None = None) -> bool:
    """Is the process running? With ``started`` (its start ticks), a new process that was
    given a dead run's pid does not count."""
    if not pid:
        return False
    try:  # a run we started and that died is a zombie child until reaped: reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields[:1] == ["Z"]:  # dead, waiting for a parent (or init) to reap it
        return False
    if started is not None and len(fields) > 19:
        return fields[19] == str(started)  # field 22 of proc(5): its start time
    return True


def status_pid_alive(status: dict[str, Any]) -> bool:
    return pid_alive(status.get("pid"), status.get("pid_started"))


def live_view(lab: Lab, record: dict[str, Any]) -> dict[str, Any]:
    """The run record merged with its status.json; a silent, vanished process is 'crashed'."""
    view = dict(record)
    status = read_status(lab, record["id"])
    if record["status"] in ("queued", "running") and status.get("status") in FINAL_STATUSES:
        # The worker writes its end to status.json first, then to the lab log (which a
        # full disk may prevent): until the lab log catches up, status.json is the truth.
        view["status"] = status["status"]
        view["reason"] = status.get("reason") or None
        view["step"] = status.get("step", view.get("step", 0))
        view["ended"] = status.get("ended") or view.get("ended")
        view["summary"] = status.get("summary") or view.get("summary") or {}
    elif record["status"] in ("queued", "running") and status:
        view["step"] = status.get("step", view.get("step", 0))
        view["latest"] = status.get("latest", {})
        view["heartbeat"] = status.get("heartbeat")
        # Only a process of this host can be checked; a run on another host that shares the
        # lab (over NFS, say) shows what its status file says.
        same_host = status.get("host") in (None, socket.gethostname())
        silent = time.time() - float(status.get("heartbeat") or time.time())
        if silent > SILENT_AFTER_SECONDS and status.get("status") == "running":
            view["reason"] = (
                f"no heartbeat for {silent:,.0f} s: its process lives but is not training "
                "(suspended with ctrl+z? hung on a disk or GPU?)"
            )
        if same_host and not status_pid_alive(status):
            view["status"] = "crashed"
            view["reason"] = VANISHED
    elif record["status"] == "queued" and record.get("pid") and not pid_alive(record["pid"]):
        if record.get("stop_requested"):
            view["status"], view["reason"] = "stopped", "stopped before training started"
        else:
            view["status"] = "crashed"
            view["reason"] = "the run process exited before it started; see run.log"
    view["total"] = record.get("config", {}).get("schedule", {}).get("steps")
    return view


def phase_marks(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """t1..t4 and the outcome of each run, from its detected events."""
    marks: dict[str, dict[str, Any]] = {}
    for event in events:
        run_marks = marks.setdefault(event["run"], {})
        if event["kind"] in ("t1", "t2", "t3", "t4"):
            run_marks[event["kind"]] = event["step"]
        elif event["kind"] == "outcome":
            run_marks["phase"] = event["detail"].split(":", 1)[0]
    return marks


def live_views(lab: Lab) -> list[dict[str, Any]]:
    """Every run's live view; a running run's phase marks come from its events so far."""
    marks = phase_marks(lab.events())
    views = [live_view(lab, record) for record in lab.list_runs()]
    for view in views:
        if view["id"] in marks:
            view["summary"] = {**(view.get("summary") or {}), **marks[view["id"]]}
    return views


def stop(lab: Lab, run_id: str) -> None:
    """Ask a running run to stop: it checkpoints and ends as 'stopped'."""
    record = lab.get_run(run_id)
    status = read_status(lab, run_id)
    pid = status.get("pid") or record.get("pid")
    alive = pid_alive(pid, status.get("pid_started"))
    if record["status"] not in ("queued", "running") or not alive:
        status_now = live_view(lab, record)["status"]
        raise LabError(f"run {run_id} is not running (status {status_now})")
    # Recorded first: a worker killed by this signal before its handlers exist still
    # reads as stopped, not crashed.
    lab.update_run(run_id, stop_requested=True)
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)  # a suspended run (ctrl+z) would hold the SIGTERM for ever


RESUMABLE = ("stopped", "crashed")


def has_checkpoint(lab: Lab, run_id: str) -> bool:
    return any((lab.run_dir(run_id) / "checkpoints").glob("step-*.pt"))


def wait_for_previous_process(lab: Lab, run_id: str, timeout: float = 30.0) -> None:
    """A run records its end, then releases its run lock and exits: a resume in that
    moment would start a worker that finds the lock still held. Wait for the exit."""
    status = read_status(lab, run_id)
    if status.get("status") not in FINAL_STATUSES or status.get("host") != socket.gethostname():
        return
    deadline = time.monotonic() + timeout
    while status_pid_alive(status):
        if time.monotonic() > deadline:
            raise LabError(
                f"run {run_id} has ended but its process ({status.get('pid')}) has not exited "
                f"after {timeout:.0f} s; resume it once it has"
            )
        time.sleep(0.05)


def resume(lab: Lab, run_id: str) -> int:
    """Continue a stopped or crashed run from its last checkpoint in a new process (from
    step 0 if it ended before its first checkpoint). Two resumes at once: one wins."""

    def refusal(record: dict[str, Any]) -> str | None:
        status = live_view(lab, record)["status"]
        if status not in RESUMABLE:
            return f"run {run_id} is {status}; only stopped or crashed runs resume"
        # The old heartbeat belongs to a dead process; until the new one beats, the run
        # is judged by the new pid.
        (lab.run_dir(run_id) / "status.json").unlink(missing_ok=True)
        return None

    wait_for_previous_process(lab, run_id)
    lab.update_run_if(run_id, refusal, status="queued", reason=None, stop_requested=False, pid=None)
    try:
        return start_detached(lab, run_id, resume=True)
    except OSError as exc:
        lab.update_run(run_id, status="crashed", reason=f"could not start the run process: {exc}")
        raise LabError(f"could not start the run process for {run_id}: {exc}") from None


def record_ended_runs(lab: Lab) -> list[str]:
    """Write into the lab log the end of runs that it still lists as queued or running but
    that have ended: their process is gone (a crash), or status.json already holds the end
    the lab log has not caught up with; returns their ids."""
    settled = []
    for record in lab.list_runs():
        if record["status"] not in ("queued", "running"):
            continue
        view = live_view(lab, record)
        if view["status"] in FINAL_STATUSES:
            lab.update_run(
                record["id"],
                status=view["status"],
                step=view["step"],
                reason=view["reason"],
                summary=view.get("summary") or {},
                ended=view.get("ended"),
            )
            settled.append(record["id"])
    return settled


def unlisted_run_dirs(lab: Lab) -> list[str]:
    """Run directories with an experiment.toml that the lab log does not list."""
    if not lab.runs_dir.is_dir():
        return []
    listed = {record["id"] for record in lab.list_runs()} if lab.exists else set()
    return sorted(
        path.name
        for path in lab.runs_dir.iterdir()
        if path.name not in listed and (path / "experiment.toml").is_file()
    )


def reregister(lab: Lab, run_id: str) -> dict[str, Any]:
    """Rebuild a lost run record from the run's own files: its config from experiment.toml,
    its state from status.json, its events and phase marks by replaying the detector over
    metrics.jsonl. (Its notes come back from the notes journal: Lab.recover_notes.)"""
    from grokterm.lab.stream import read_records
    from grokterm.phases import replay
    from grokterm.presets import build_experiment, read_toml

    run_dir = lab.run_dir(run_id)
    experiment = build_experiment(read_toml(run_dir / "experiment.toml"), origin=run_id)
    status = read_status(lab, run_id)
    records = read_records(run_dir / "metrics.jsonl")
    last = records[-1]["step"] if records else 0
    if status.get("pid") and status_pid_alive(status):
        state = "running"
    elif status.get("status") in FINAL_STATUSES:
        state = status["status"]
    else:
        state = "crashed"
    detector, events = replay(
        records, experiment.detector, final_step=last if state == "finished" else None
    )
    name, _, number = run_id.rpartition("-")
    last_probe = next((r for r in reversed(records) if "test_acc" in r), {})
    summary = {
        **detector.summary(),
        **detector.forecast_summary(),
        **{k: last_probe.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
    }
    record = {
        "id": run_id,
        "seq": int(number) if number.isdigit() else 0,
        "name": experiment.name or name,
        "preset": None,
        "config": experiment.model_dump(mode="json"),
        "tags": list(experiment.tags),
        "status": state,
        "created": _modified_iso(run_dir / "experiment.toml"),
        "started": None,
        "ended": _modified_iso(run_dir / "status.json") if state in FINAL_STATUSES else None,
        "step": int(status.get("step", last)),
        "summary": summary,
        "reason": status.get("reason") or (VANISHED if state == "crashed" else None),
        "restored": True,
    }
    lab.restore_run(record)
    lab.add_events(run_id, events)
    return record


def _modified_iso(path: Path) -> str | None:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def wait_until_done(lab: Lab, run_id: str, timeout: float) -> dict[str, Any]:
    """Poll until the run has ended and its process has exited, so every file it writes
    is complete (for scripts and tests); returns the view as it is at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        view = live_view(lab, lab.get_run(run_id))
        ended = view["status"] not in ("queued", "running")
        if ended and not status_pid_alive(read_status(lab, run_id)):
            return live_view(lab, lab.get_run(run_id))
        if time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def run_log(lab: Lab, run_id: str) -> Path:
    return lab.run_dir(run_id) / "run.log"
