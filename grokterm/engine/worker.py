"""A run's process: read the run's experiment.toml, train, write everything to the lab.

`python -m grokterm.engine.worker --lab LAB RUN_ID` is what a detached run executes; a
foreground `grokterm run` calls `execute` in its own process with extra hooks.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock

from grokterm.config import Experiment
from grokterm.engine.stopping import StopFlag, install_stop_handlers
from grokterm.lab import Lab, LabError, MetricStream, write_json_atomic
from grokterm.lab.records import ENDED_CLEANLY, RunStatus, StatusFile
from grokterm.presets import build_experiment, read_toml
from grokterm.processes import process_start_ticks

EventHook = Callable[[dict[str, Any]], None]
BeatHook = Callable[[int, dict[str, Any]], None]

# Space set aside while a run trains, given back when a write fails, so that even on a full
# disk the run can still record why it ended.
RESERVE_BYTES = 1 << 20


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LabRecorder:
    """Writes a run's stream, status.json heartbeat, events and final record."""

    def __init__(
        self,
        lab: Lab,
        run_id: str,
        experiment: Experiment,
        on_event: EventHook | None = None,
        on_beat: BeatHook | None = None,
    ):
        self.lab = lab
        self.run_id = run_id
        self.run_dir = lab.run_dir(run_id)
        self.total = experiment.schedule.steps
        self.stream: MetricStream | None = None  # opened by started(), after any rewind
        self.on_event = on_event
        self.on_beat = on_beat
        self.device = ""
        self.host = socket.gethostname()
        self.pid_started = process_start_ticks(os.getpid())
        self.last_step = 0
        self.reserve = self.run_dir / ".space-reserve"

    def write_status(self, status: str, step: int, **extra: Any) -> None:
        beat = StatusFile(
            status=status,
            pid=os.getpid(),
            pid_started=self.pid_started,
            host=self.host,
            device=self.device,
            heartbeat=time.time(),
            step=step,
            total=self.total,
            **extra,
        )
        write_json_atomic(self.run_dir / "status.json", beat.to_json())

    def started(self, device: str, start_step: int, data: dict[str, Any]) -> None:
        self._set_aside_space()
        self.stream = MetricStream(self.run_dir / "metrics.jsonl")
        self.device = device
        self.lab.update_run(
            self.run_id,
            status=RunStatus.RUNNING,
            started=now_iso(),
            ended=None,
            reason=None,
            device=device,
            data=data,
            pid=os.getpid(),
            host=self.host,
        )
        self.write_status(RunStatus.RUNNING, start_step)

    def record(self, record: dict[str, Any]) -> None:
        self.last_step = record["step"]
        self.stream.append(record)

    def flush(self) -> None:
        if self.stream:
            self.stream.flush()

    def events(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        if self.stream:
            self.stream.flush()
        self.lab.add_events(self.run_id, events)
        if self.on_event:
            for event in events:
                self.on_event(event)

    def heartbeat(self, step: int, probe: dict[str, Any]) -> None:
        latest = {k: probe[k] for k in ("loss", "train_acc", "test_acc") if k in probe}
        self.write_status(RunStatus.RUNNING, step, latest=latest)
        if self.on_beat:
            self.on_beat(step, probe)

    def finished(self, status: str, step: int, summary: dict[str, Any], reason: str) -> None:
        """Record the end of the run as well as the disk allows; never raises, so a failed
        write cannot hide why the run ended. Whatever could not be written is said in
        run.log.

        status.json is written first and is the truth from then on: every reader
        (live.live_view) takes a final status from it, so nobody sees the run end in
        one record and still running in the other, and it carries the end if the lab log
        cannot."""
        self.give_back_space()
        if self.stream:
            try:
                self.stream.close()
            except OSError as exc:
                self.stream.abandon()
                warn(f"the last metric records were lost: {describe_failure(exc)}")
        ended = now_iso()
        try:
            self.write_status(status, step, reason=reason, ended=ended, summary=summary)
        except (LabError, OSError) as exc:
            warn(f"status.json could not be written: {describe_failure(exc)}")
        try:
            self.lab.update_run(
                self.run_id,
                status=status,
                step=step,
                summary=summary,
                reason=reason or None,
                ended=ended,
            )
        except (LabError, OSError) as exc:
            warn(f"the lab log could not record the end of the run: {describe_failure(exc)}")

    def _set_aside_space(self) -> None:
        try:
            with open(self.reserve, "wb") as file:
                os.posix_fallocate(file.fileno(), 0, RESERVE_BYTES)
        except (OSError, AttributeError):
            self.reserve.unlink(missing_ok=True)  # too little space to set any aside

    def give_back_space(self) -> None:
        with suppress(OSError):
            self.reserve.unlink(missing_ok=True)


def warn(message: str) -> None:
    """A line in run.log (a detached run's stderr); never fails."""
    with suppress(OSError, ValueError):
        print(f"grokterm: {message}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def describe_failure(exc: BaseException, step: int | None = None) -> str:
    """Why a run ended, in words a researcher can act on."""
    where = f" at step {step}" if step is not None else ""
    name = type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        target = f" writing {exc.filename}" if exc.filename else ""
        return f"no space left on the device{target}{where}; free some and resume the run"
    if name == "OutOfMemoryError":  # torch's CUDA OOM, named without importing torch
        return (
            f"CUDA out of memory{where}: {first_line(exc)} (try a smaller batch_size or model, "
            "or device = cpu)"
        )
    if isinstance(exc, MemoryError):
        return f"out of memory{where} (try a smaller batch_size or model)"
    if isinstance(exc, OSError):
        target = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{target}{where}"
    if isinstance(exc, LabError):
        return f"{exc}{where}"
    return f"{name}{where}: {exc}".strip().removesuffix(":")


def load_run_experiment(lab: Lab, run_id: str) -> Experiment:
    path = lab.run_dir(run_id) / "experiment.toml"
    return build_experiment(read_toml(path), origin=str(path))


def rewind_to_checkpoint(lab: Lab, run_id: str, session):
    """Restore the last checkpoint; drop metrics and events after it; replay the detector.

    Returns the replayed detector, or None when no checkpoint loads (the run ended before
    its first one): then the run's records are dropped and it starts again from step 0.
    """
    from grokterm.engine.checkpoints import list_checkpoints
    from grokterm.lab.stream import read_records, truncate_after
    from grokterm.phases import replay

    run_dir = lab.run_dir(run_id)
    found = list_checkpoints(run_dir / "checkpoints")
    # The newest checkpoint whose records all reached the disk (streams flush every second).
    last_recorded = max((r["step"] for r in read_records(run_dir / "metrics.jsonl")), default=0)
    step = restore_newest_loadable(session, {s: p for s, p in found.items() if s <= last_recorded})
    if step is None:
        had = f"none of its {len(found)} checkpoint(s) loads" if found else "it has no checkpoint"
        warn(f"{run_id} starts again from step 0: {had}")
        truncate_after(run_dir / "metrics.jsonl", -1)
        lab.delete_events(run_id, after_step=-1)
        return None
    truncate_after(run_dir / "metrics.jsonl", step)
    lab.delete_events(run_id, after_step=step)
    records = read_records(run_dir / "metrics.jsonl")
    probes = [r for r in records if "test_acc" in r]
    session.best_test_acc = max((r["test_acc"] for r in probes), default=-math.inf)
    detector, replayed = replay(records, session.exp.detector)
    # Events the crashed process could not write (a failing lab log) come back from the
    # replay; those already recorded are not repeated.
    recorded = {(event.step, event.kind) for event in lab.events(run_id)}
    lab.add_events(run_id, [e for e in replayed if (e["step"], e["kind"]) not in recorded])
    return detector


def restore_newest_loadable(session, checkpoints: dict[int, Path]) -> int | None:
    """Restore the newest checkpoint that loads (weights only) and fits; returns its step,
    or None when none does. A damaged or unsafe file is reported in run.log and skipped,
    never deleted."""
    from grokterm.engine.checkpoints import load_checkpoint, restore

    for step in sorted(checkpoints, reverse=True):
        path = checkpoints[step]
        try:
            restore(session, load_checkpoint(path, session.device))
        except Exception as exc:  # torch reports damage as several types
            why = f"{type(exc).__name__}: {first_line(exc)}"
            warn(f"skipped checkpoint {path.name}: it does not load ({why})")
            continue
        return step
    return None


class UserError(Exception):
    """A problem the user can fix (missing data, no CUDA); reported without a traceback."""


def execute(
    lab: Lab,
    run_id: str,
    on_event: EventHook | None = None,
    on_beat: BeatHook | None = None,
    stop: StopFlag | None = None,
    resume: bool = False,
):
    """Train the run to its end; always leaves the run record in a final status.

    One process at a time trains a run: a second (two resumes at once, say) leaves at once
    and touches nothing.
    """
    if stop is None:
        stop = StopFlag()
        install_stop_handlers(stop)
    lock = filelock.FileLock(lab.run_dir(run_id) / "run.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise UserError(f"run {run_id} is already being trained by another process") from None
    try:
        return _train(lab, run_id, on_event, on_beat, stop, resume)
    finally:
        lock.release()


def _train(lab, run_id, on_event, on_beat, stop, resume):
    from grokterm.engine import loop
    from grokterm.engine.tasks import DataError

    try:
        experiment = load_run_experiment(lab, run_id)
    except Exception as exc:
        with suppress(LabError, OSError):
            lab.update_run(run_id, status=RunStatus.CRASHED, reason=str(exc), ended=now_iso())
        raise UserError(str(exc)) from None
    recorder = LabRecorder(lab, run_id, experiment, on_event, on_beat)
    session = None
    try:
        session = loop.build_session(experiment)
        detector = rewind_to_checkpoint(lab, run_id, session) if resume else None
        if resume and detector is None:  # a failed restore may have half-loaded the session
            session = loop.build_session(experiment)
        return loop.run_training(
            session, recorder, lab.run_dir(run_id) / "checkpoints", stop, detector
        )
    except (DataError, loop.DeviceError) as exc:
        recorder.finished(RunStatus.CRASHED, recorder.last_step, {}, str(exc))
        raise UserError(str(exc)) from None
    except BaseException as exc:
        reason = describe_failure(exc, recorder.last_step if recorder.stream else None)
        recorder.give_back_space()
        with suppress(OSError), open(lab.run_dir(run_id) / "run.log", "a") as log:
            log.write(traceback.format_exc())
        if isinstance(exc, LabError) and session is not None:
            keep_work_done(session, recorder, lab.run_dir(run_id) / "checkpoints")
        recorder.finished(RunStatus.CRASHED, recorder.last_step, {}, reason)
        raise UserError(f"crashed: {reason} (traceback in run.log)") from None


def keep_work_done(session, recorder: LabRecorder, checkpoints: Path) -> None:
    """The lab log failed, not training: the weights are sound, so checkpoint them."""
    from grokterm.engine.checkpoints import save_checkpoint

    try:
        recorder.flush()
        save_checkpoint(session, checkpoints)
    except (OSError, RuntimeError) as exc:
        warn(f"no final checkpoint: {describe_failure(exc)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grokterm-worker")
    parser.add_argument("--lab", required=True)
    parser.add_argument("run_id")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        outcome = execute(Lab(Path(args.lab)), args.run_id, resume=args.resume)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        return 1
    return 0 if outcome.status in ENDED_CLEANLY else 1


if __name__ == "__main__":
    sys.exit(main())
