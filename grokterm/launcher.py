"""The one door through which runs are launched, resumed and stopped, whatever backend
executes them (the local process now). No torch here: the TUI imports this module."""

from __future__ import annotations

import time
from pathlib import Path

from grokterm.backends import backend_for
from grokterm.config import Experiment
from grokterm.lab import Lab, LabError
from grokterm.lab.checkpoint_files import list_checkpoints
from grokterm.lab.records import ACTIVE, RESUMABLE, RunRecord, RunStatus, RunView
from grokterm.live import is_alive, live_view, read_status
from grokterm.presets import experiment_to_toml


def create_run(lab: Lab, experiment: Experiment, preset: str | None) -> str:
    """Record a queued run and write its exact config to runs/<id>/experiment.toml."""
    record = lab.create_run(experiment.name, preset, *run_fields(experiment))
    write_experiment_file(lab, record.id, experiment)
    return record.id


def run_fields(experiment: Experiment) -> tuple[dict, list[str]]:
    """What a run record keeps of its experiment: the config and the tags."""
    return experiment.model_dump(mode="json"), list(experiment.tags)


def write_experiment_file(lab: Lab, run_id: str, experiment: Experiment) -> None:
    from grokterm.lab.store import write_bytes_atomic

    write_bytes_atomic(
        lab.run_dir(run_id) / "experiment.toml", experiment_to_toml(experiment).encode()
    )


def start(lab: Lab, run_id: str, resume: bool = False, threads: int | None = None) -> None:
    """Start a queued run's process; if it cannot start, the run is marked crashed (it
    would otherwise stay queued for ever) and the failure raised as a LabError."""
    try:
        backend_for(lab.get_run(run_id)).start(lab, run_id, resume, threads)
    except OSError as exc:
        try:
            lab.update_run(
                run_id, status=RunStatus.CRASHED, reason=f"could not start the run process: {exc}"
            )
        except (LabError, OSError):
            pass  # the failure to start is what the caller must hear about
        raise LabError(f"could not start the run process for {run_id}: {exc}") from None


def launch(lab: Lab, experiment: Experiment, preset: str | None) -> str:
    """Create a run of ``experiment`` and start it in the background; returns its id."""
    run_id = create_run(lab, experiment, preset)
    start(lab, run_id)
    return run_id


def stop(lab: Lab, run_id: str) -> None:
    """Ask a running run to stop: it checkpoints and ends as 'stopped'."""
    record = lab.get_run(run_id)
    status = read_status(lab, run_id)
    if record.status not in ACTIVE or not is_alive(record, status):
        status_now = live_view(lab, record).status
        raise LabError(f"run {run_id} is not running (status {status_now})")
    # Recorded first: a worker killed by this signal before its handlers exist still
    # reads as stopped, not crashed.
    lab.update_run(run_id, stop_requested=True)
    backend_for(record).stop(record, status)


def resume(lab: Lab, run_id: str) -> bool:
    """Continue a stopped or crashed run from its last checkpoint in a new process, or from
    step 0 if it ended before its first checkpoint; returns True in that case (a restart).
    Two resumes at once: one wins."""
    restart = requeue(lab, run_id)
    start(lab, run_id, resume=True)
    return restart


def requeue(lab: Lab, run_id: str) -> bool:
    """Make a stopped or crashed run queued again, to be started with resume=True; returns
    True when it has no checkpoint (it will restart from step 0)."""

    def refusal(record: RunRecord) -> str | None:
        status = live_view(lab, record).status
        if status not in RESUMABLE:
            return f"run {run_id} is {status}; only stopped or crashed runs resume"
        # The old heartbeat belongs to a dead process; until the new one beats, the run
        # is judged by the new process.
        (lab.run_dir(run_id) / "status.json").unlink(missing_ok=True)
        return None

    wait_for_previous_process(lab, run_id)
    restart = not list_checkpoints(lab.run_dir(run_id) / "checkpoints")
    lab.update_run_if(
        run_id, refusal, status=RunStatus.QUEUED, reason=None, stop_requested=False, pid=None
    )
    return restart


def wait_for_previous_process(lab: Lab, run_id: str, timeout: float = 30.0) -> None:
    """A run records its end, then releases its run lock and exits: a resume in that
    moment would start a worker that finds the lock still held. Wait for the exit."""
    record, status = lab.get_run(run_id), read_status(lab, run_id)
    if not status.final:
        return
    deadline = time.monotonic() + timeout
    while is_alive(record, status):
        if time.monotonic() > deadline:
            raise LabError(
                f"run {run_id} has ended but its process ({status.pid}) has not exited "
                f"after {timeout:.0f} s; resume it once it has"
            )
        time.sleep(0.05)


def wait_until_done(lab: Lab, run_id: str, timeout: float) -> RunView:
    """Poll until the run has ended and its process has exited, so every file it writes
    is complete (for scripts and tests); returns the view as it is at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        record = lab.get_run(run_id)
        view = live_view(lab, record)
        if view.status not in ACTIVE and not is_alive(record, read_status(lab, run_id)):
            return live_view(lab, lab.get_run(run_id))
        if time.monotonic() > deadline:
            return view
        time.sleep(0.1)


def run_log(lab: Lab, run_id: str) -> Path:
    return lab.run_dir(run_id) / "run.log"
