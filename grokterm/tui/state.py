"""What the TUI knows about the lab: one snapshot of its runs, events and notes, refreshed
by one poller, and the metric streams that screens watch, tailed incrementally.

Everything here goes through the lab-log module and the launcher; no torch, no Textual.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from grokterm import launcher
from grokterm.lab import Lab
from grokterm.lab.stream import StreamTail
from grokterm.tui.series import RunSeries

ACTIVE = ("queued", "running")  # a run record whose view also depends on status.json
NEVER_READ = ("never read",)  # a lab-log signature no file has


class RunTail:
    """A run's metrics.jsonl, read as it grows. Shared by screens and polled from threads."""

    def __init__(self, lab: Lab, run_id: str):
        self.tail = StreamTail(lab.run_dir(run_id) / "metrics.jsonl")
        self.series = RunSeries()
        self._lock = threading.Lock()

    def poll(self) -> bool:
        """Read new records; True when the series changed. A poll already under way wins:
        two readers of one tail would add the same records twice."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._read()
        finally:
            self._lock.release()

    def _read(self) -> bool:
        records = self.tail.read_new()
        if self.tail.reset:  # the stream was rewritten (a resume dropped records)
            self.series.reset()
        self.series.extend(records)
        return bool(records) or self.tail.reset


@dataclass(frozen=True)
class LabChange:
    """What one or more refreshes changed, by run id."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()  # watched runs whose metric stream grew
    log: bool = False  # the lab log was read again: events or notes may be new

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.streams or self.log)

    def __or__(self, other: LabChange) -> LabChange:
        return LabChange(
            self.added | other.added,
            self.removed | other.removed,
            self.changed | other.changed,
            self.streams | other.streams,
            self.log or other.log,
        )

    def touches(self, run_ids: list[str] | set[str]) -> bool:
        ids = set(run_ids)
        return bool(ids & (self.added | self.removed | self.changed | self.streams))


@dataclass(frozen=True)
class Snapshot:
    """The lab as last read: replaced whole, never changed, so any thread may read it."""

    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # in the lab's order
    events: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    loaded: bool = False  # False until the first read: no runs yet is not "no runs"

    def events_of(self, run_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["run"] == run_id]

    def notes_of(self, run_id: str) -> list[dict[str, Any]]:
        return [note for note in self.notes if note.get("run") == run_id]


def with_marks(view: dict[str, Any], marks: dict[str, Any] | None) -> dict[str, Any]:
    """A running run's phase marks so far come from its events (as launcher.live_views)."""
    if marks:
        view["summary"] = {**(view.get("summary") or {}), **marks}
    return view


class LabState:
    """Refreshed by one poller: the lab log is parsed only when its file changed, and the
    status files only of runs that are queued or running."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.snapshot = Snapshot()
        self._records: dict[str, dict[str, Any]] = {}
        self._marks: dict[str, dict[str, Any]] = {}
        self._signature: tuple = NEVER_READ
        self._tails: dict[str, RunTail] = {}
        self._watched: Counter[str] = Counter()
        self._refreshing = threading.Lock()
        self._pending = LabChange()
        self._pending_lock = threading.Lock()

    # --- the poller's side (any thread) -----------------------------------------------------

    def refresh(self) -> bool:
        """Read what changed; True when there is a change to take. Refreshes never overlap
        (one already under way wins), so an older read can never replace a newer snapshot."""
        if not self._refreshing.acquire(blocking=False):
            return False
        try:
            change = self._read()
        finally:
            self._refreshing.release()
        with self._pending_lock:
            self._pending = self._pending | change
        return bool(change)

    def take_changes(self) -> LabChange:
        """Everything changed since the last take: the snapshot already holds it."""
        with self._pending_lock:
            change, self._pending = self._pending, LabChange()
        return change

    def _read(self) -> LabChange:
        signature = self._lablog_signature()
        log_read = signature != self._signature
        old, events, notes = self.snapshot.views, self.snapshot.events, self.snapshot.notes
        records, marks = self._records, self._marks
        if log_read:
            records = {record["id"]: record for record in self.lab.list_runs()}
            events, notes = self.lab.events(), self.lab.notes()
            marks = launcher.phase_marks(events)
        views = {
            run_id: self._view(record, marks.get(run_id), log_read)
            for run_id, record in records.items()
        }
        self._records, self._marks, self._signature = records, marks, signature
        self.snapshot = Snapshot(views, events, notes, loaded=True)
        return LabChange(
            added=frozenset(views.keys() - old.keys()),
            removed=frozenset(old.keys() - views.keys()),
            changed=frozenset(i for i in views.keys() & old.keys() if views[i] != old[i]),
            streams=frozenset(run_id for run_id in self._watched if self.tail(run_id).poll()),
            log=log_read,
        )

    def _view(self, record: dict[str, Any], marks: dict | None, log_read: bool) -> dict:
        run_id = record["id"]
        old = self.snapshot.views.get(run_id)
        unchanged = not log_read or (
            record == self._records.get(run_id) and marks == self._marks.get(run_id)
        )
        if old is not None and unchanged and record["status"] not in ACTIVE:
            return old
        return with_marks(launcher.live_view(self.lab, record), marks)

    def _lablog_signature(self) -> tuple:
        try:
            stat = os.stat(self.lab.lablog_path)
        except FileNotFoundError:
            return ()
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    # --- the screens' side -------------------------------------------------------------------

    def view(self, run_id: str) -> dict[str, Any] | None:
        return self.snapshot.views.get(run_id)

    def tail(self, run_id: str) -> RunTail:
        if run_id not in self._tails:
            self._tails[run_id] = RunTail(self.lab, run_id)
        return self._tails[run_id]

    def watch(self, run_ids: list[str]) -> None:
        """Tail these runs' metric streams at each refresh, until unwatched."""
        for run_id in run_ids:
            self.tail(run_id)
        self._watched = self._watched + Counter(run_ids)  # a new Counter: the poller may
        # be iterating the old one

    def unwatch(self, run_ids: list[str]) -> None:
        self._watched = self._watched - Counter(run_ids)  # keeps only counts above zero
