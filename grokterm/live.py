"""What state each run is in now: its lab-log record merged with its status.json and with
whether its process lives. No torch here: the TUI reads runs through this module."""

from __future__ import annotations

import time
from typing import Any

from grokterm.backends import backend_for
from grokterm.lab import Lab
from grokterm.lab.records import (
    ACTIVE,
    PHASE_MARKS,
    Event,
    RunRecord,
    RunStatus,
    RunView,
    StatusFile,
)

VANISHED = "its process ended without a final status (killed? out of memory?); resume it"
# A live run beats every second; a slow probe may skip some beats, a minute of silence
# means it is suspended or hung, which the views say (it stays 'running').
SILENT_AFTER_SECONDS = 60.0


def read_status(lab: Lab, run_id: str) -> StatusFile:
    """The run's status.json; an empty status (``written`` False) where there is none yet."""
    try:
        return StatusFile.model_validate_json((lab.run_dir(run_id) / "status.json").read_bytes())
    except (OSError, ValueError):
        return StatusFile()


def is_alive(run: RunRecord, status: StatusFile) -> bool | None:
    """Does the run's process live? None when its backend cannot tell from here."""
    return backend_for(run).is_alive(run, status)


def live_view(lab: Lab, record: RunRecord) -> RunView:
    """The run record merged with its status.json; a silent, vanished process is 'crashed'."""
    view = RunView.model_validate(record.to_json())
    if record.status not in ACTIVE:
        return view
    status = read_status(lab, record.id)
    if status.final:
        _take_end(view, status)
    elif status.written:
        _take_heartbeat(view, status, is_alive(record, status))
    elif record.status == RunStatus.QUEUED and is_alive(record, status) is False:
        _settle_never_started(view, record)
    return view


def _take_end(view: RunView, status: StatusFile) -> None:
    # The worker writes its end to status.json first, then to the lab log (which a full
    # disk may prevent): until the lab log catches up, status.json is the truth.
    view.status = status.status
    view.reason = status.reason or None
    view.step = view.step if status.step is None else status.step
    view.ended = status.ended or view.ended
    view.summary = status.summary or view.summary


def _take_heartbeat(view: RunView, status: StatusFile, alive: bool | None) -> None:
    view.step = view.step if status.step is None else status.step
    view.latest = status.latest
    view.heartbeat = status.heartbeat
    silent = time.time() - (status.heartbeat or time.time())
    if silent > SILENT_AFTER_SECONDS and status.status == RunStatus.RUNNING:
        view.reason = (
            f"no heartbeat for {silent:,.0f} s: its process lives but is not training "
            "(suspended with ctrl+z? hung on a disk or GPU?)"
        )
    if alive is False:  # only a process of this host can be checked
        view.status, view.reason = RunStatus.CRASHED, VANISHED


def _settle_never_started(view: RunView, record: RunRecord) -> None:
    if record.stop_requested:
        view.status, view.reason = RunStatus.STOPPED, "stopped before training started"
    else:
        view.status = RunStatus.CRASHED
        view.reason = "the run process exited before it started; see run.log"


def phase_marks(events: list[Event]) -> dict[str, dict[str, object]]:
    """t1..t4 and the outcome of each run, from its detected events."""
    marks: dict[str, dict[str, object]] = {}
    for event in events:
        run_marks = marks.setdefault(event.run, {})
        if event.kind in PHASE_MARKS:
            run_marks[event.kind] = event.step
        elif event.kind == "outcome" and event.outcome:
            run_marks["phase"] = event.outcome.value
    return marks


def live_views(lab: Lab) -> list[RunView]:
    """Every run's live view; a running run's phase marks come from its events so far."""
    return marked_views(lab, lab.list_runs())


def marked_views(lab: Lab, records: list[RunRecord]) -> list[RunView]:
    """These runs' live views with their phase marks so far: what `ls`, `compare` and
    exports show, so a running run's t2 reads the same everywhere."""
    marks = phase_marks(lab.events())
    return [with_marks(live_view(lab, record), marks.get(record.id)) for record in records]


def with_marks(view: RunView, marks: dict[str, Any] | None) -> RunView:
    """The view with a run's phase marks so far (from its events) in its summary."""
    if marks:
        view.summary = {**view.summary, **marks}
    return view


def record_ended_runs(lab: Lab) -> list[str]:
    """Write into the lab log the end of runs that it still lists as queued or running but
    that have ended: their process is gone (a crash), or status.json already holds the end
    the lab log has not caught up with; returns their ids."""
    settled = []
    for record in lab.list_runs():
        if record.status not in ACTIVE:
            continue
        view = live_view(lab, record)
        if view.status not in ACTIVE:
            lab.update_run(
                record.id,
                status=view.status,
                step=view.step,
                reason=view.reason,
                summary=view.summary,
                ended=view.ended,
            )
            settled.append(record.id)
    return settled


def settled_views(lab: Lab, run_ids: list[str]) -> list[RunView]:
    """The marked views of these runs after recording the end of any that ended unseen,
    so an export calls a killed run crashed, not running."""
    record_ended_runs(lab)
    return marked_views(lab, [lab.get_run(run_id) for run_id in run_ids])
