"""What the TUI knows about the lab: one snapshot of its runs, events and notes, refreshed
by one poller, and the metric streams that screens watch, tailed incrementally.

Everything here goes through the lab-log module and the live views; no torch, no Textual.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from grokterm import live
from grokterm.lab import Lab
from grokterm.lab.records import ACTIVE, Event, RunRecord, RunView, SweepRecord
from grokterm.lab.stream import COLUMN_METRIC, ColumnTail, StreamTail, loss_column_path
from grokterm.sweep.control import SweepView
from grokterm.sweep.control import view as sweep_view
from grokterm.tui.series import RunSeries

NEVER_READ = ("never read",)  # a lab-log signature no file has


class RunTail:
    """A run's metric stream, read as it grows. Shared by screens and polled from threads.

    The per-step loss column is read only for a view that charts it (the monitor) and
    dropped when no view does: a compare of a sweep would otherwise hold every cell's."""

    def __init__(self, lab: Lab, run_id: str):
        stream = lab.run_dir(run_id) / "metrics.jsonl"
        self.tail = StreamTail(stream)
        self.column_path = loss_column_path(stream)
        self.column_tail: ColumnTail | None = None
        self.series = RunSeries()
        self._lock = threading.Lock()

    def poll(self, with_column: bool = False) -> bool:
        """Read new records (and, asked, new per-step losses); True when the series changed.
        A poll already under way wins: two readers of one tail would add the same records
        twice."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            changed = self._read()
            return self._read_column() or changed if with_column else changed
        finally:
            self._lock.release()

    def drop_column(self) -> None:
        with self._lock:
            self.column_tail = None
            self.series.reset_column(COLUMN_METRIC)

    def _read(self) -> bool:
        records = self.tail.read_new()
        if self.tail.reset:  # the stream was rewritten (a resume dropped records)
            self.series.reset()
        self.series.extend(records)
        return bool(records) or self.tail.reset

    def _read_column(self) -> bool:
        if self.column_tail is None:
            self.column_tail = ColumnTail(self.column_path)
        tail, changed = self.column_tail, False
        while True:  # in slices, so that a long run's first read never holds two copies
            values = tail.read_new()
            if tail.reset:  # rewritten by a resume
                self.series.reset_column(COLUMN_METRIC)
                changed = True
            if not values:
                return changed
            self.series.extend_column(COLUMN_METRIC, values, tail.steps_on_disk())
            changed = True


@dataclass(frozen=True)
class LabChange:
    """What one or more refreshes changed, by run id."""

    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    changed: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()  # watched runs whose metric stream grew
    log: bool = False  # the lab log was read again: events or notes may be new
    sweeps: frozenset[str] = frozenset()  # sweeps added, removed, or whose cells or state changed

    def __bool__(self) -> bool:
        return bool(
            self.added or self.removed or self.changed or self.streams or self.log or self.sweeps
        )

    def __or__(self, other: LabChange) -> LabChange:
        return LabChange(
            self.added | other.added,
            self.removed | other.removed,
            self.changed | other.changed,
            self.streams | other.streams,
            self.log or other.log,
            self.sweeps | other.sweeps,
        )

    def touches(self, run_ids: list[str] | set[str]) -> bool:
        ids = set(run_ids)
        return bool(ids & (self.added | self.removed | self.changed | self.streams))


@dataclass(frozen=True)
class Snapshot:
    """The lab as last read: replaced whole, never changed, so any thread may read it."""

    views: dict[str, RunView] = field(default_factory=dict)  # in the lab's order
    events: list[Event] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    sweeps: dict[str, SweepView] = field(default_factory=dict)  # in the lab's order
    loaded: bool = False  # False until the first read: no runs yet is not "no runs"

    def events_of(self, run_id: str) -> list[Event]:
        return [event for event in self.events if event.run == run_id]

    def notes_of(self, run_id: str) -> list[dict[str, Any]]:
        return [note for note in self.notes if note.get("run") == run_id]


def changed_sweeps(
    old: dict[str, SweepView], new: dict[str, SweepView], runs: frozenset[str]
) -> frozenset[str]:
    """Sweeps that are new or gone, or whose record, state or any cell's run changed."""
    ids = old.keys() ^ new.keys()
    for sweep_id in old.keys() & new.keys():
        before, after = old[sweep_id], new[sweep_id]
        if (
            before.record != after.record
            or before.state != after.state
            or not runs.isdisjoint(after.record.cells)
        ):
            ids.add(sweep_id)
    return frozenset(ids)


class LabState:
    """Refreshed by one poller: the lab log is parsed only when its file changed, and the
    status files only of runs that are queued or running."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.snapshot = Snapshot()
        self._records: dict[str, RunRecord] = {}
        self._marks: dict[str, dict[str, Any]] = {}
        self._sweep_records: list[SweepRecord] = []
        self._signature: tuple = NEVER_READ
        self._tails: dict[str, RunTail] = {}
        self._watched: Counter[str] = Counter()
        self._column_watched: Counter[str] = Counter()
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
        records, marks, sweep_records = self._records, self._marks, self._sweep_records
        if log_read:
            log = self.lab.read_log()  # one read of the file for all its tables
            records = {record.id: record for record in log.runs}
            events, notes, sweep_records = log.events, log.notes, log.sweeps
            marks = live.phase_marks(events)
        views = {
            run_id: self._view(record, marks.get(run_id), log_read)
            for run_id, record in records.items()
        }
        self._records, self._marks, self._signature = records, marks, signature
        self._sweep_records = sweep_records
        added = frozenset(views.keys() - old.keys())
        removed = frozenset(old.keys() - views.keys())
        changed = frozenset(i for i in views.keys() & old.keys() if views[i] != old[i])
        sweeps = {record.id: sweep_view(self.lab, record, views) for record in sweep_records}
        old_sweeps = self.snapshot.sweeps
        self.snapshot = Snapshot(views, events, notes, sweeps, loaded=True)
        return LabChange(
            added=added,
            removed=removed,
            changed=changed,
            streams=frozenset(run_id for run_id in self._watched if self._poll_tail(run_id)),
            log=log_read,
            sweeps=changed_sweeps(old_sweeps, sweeps, added | removed | changed),
        )

    def _view(self, record: RunRecord, marks: dict | None, log_read: bool) -> RunView:
        run_id = record.id
        old = self.snapshot.views.get(run_id)
        unchanged = not log_read or (
            record == self._records.get(run_id) and marks == self._marks.get(run_id)
        )
        if old is not None and unchanged and record.status not in ACTIVE:
            return old
        return live.with_marks(live.live_view(self.lab, record), marks)

    def _lablog_signature(self) -> tuple:
        try:
            stat = os.stat(self.lab.lablog_path)
        except FileNotFoundError:
            return ()
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    # --- the screens' side -------------------------------------------------------------------

    def view(self, run_id: str) -> RunView | None:
        return self.snapshot.views.get(run_id)

    def tail(self, run_id: str) -> RunTail:
        if run_id not in self._tails:
            self._tails[run_id] = RunTail(self.lab, run_id)
        return self._tails[run_id]

    def watch(self, run_ids: list[str], with_column: bool = False) -> None:
        """Tail these runs' metric streams at each refresh, until unwatched; with_column
        also reads their per-step loss column (the monitor charts it)."""
        for run_id in run_ids:
            self.tail(run_id)
        # New Counters, not updates in place: the poller may be iterating the old ones.
        self._watched = self._watched + Counter(run_ids)
        if with_column:
            self._column_watched = self._column_watched + Counter(run_ids)

    def unwatch(self, run_ids: list[str], with_column: bool = False) -> None:
        self._watched = self._watched - Counter(run_ids)  # keeps only counts above zero
        if with_column:
            self._column_watched = self._column_watched - Counter(run_ids)
            for run_id in run_ids:
                if run_id not in self._column_watched:
                    self.tail(run_id).drop_column()

    def _poll_tail(self, run_id: str) -> bool:
        return self.tail(run_id).poll(with_column=run_id in self._column_watched)
