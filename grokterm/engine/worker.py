"""A run's process: read the run's experiment.toml, train, write everything to the lab.

`python -m grokterm.engine.worker --lab LAB RUN_ID` is what a detached run executes; a
foreground `grokterm run` calls `execute` in its own process with extra hooks.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from contextlib import suppress
from pathlib import Path

import filelock

from grokterm.config import Experiment
from grokterm.engine.checkpoints import rewind_to_checkpoint
from grokterm.engine.recorder import (
    BeatHook,
    EventHook,
    LabRecorder,
    describe_failure,
    now_iso,
    warn,
)
from grokterm.engine.stopping import StopFlag, install_stop_handlers
from grokterm.errors import GrokError
from grokterm.lab import Lab, LabError
from grokterm.lab.records import ENDED_CLEANLY, RunStatus
from grokterm.presets import build_experiment, read_toml


def load_run_experiment(lab: Lab, run_id: str) -> Experiment:
    path = lab.run_dir(run_id) / "experiment.toml"
    return build_experiment(read_toml(path), origin=str(path))


class UserError(GrokError):
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
    parser.add_argument("--threads", type=int, help="CPU threads for torch (a sweep's share)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
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
