"""What a run process writes about itself: status.json, the metric stream, events and its end
in the lab log, and lines in run.log."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from grokterm.config import Experiment
from grokterm.lab import Lab, LabError, MetricStream, write_json_atomic
from grokterm.lab.records import RunStatus, StatusFile
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
