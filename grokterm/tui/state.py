"""What the TUI knows about the lab: live run views and incrementally tailed metric streams.

Everything here goes through the lab-log module and the launcher; no torch, no Textual.
"""

from __future__ import annotations

import threading
from typing import Any

from grokterm import launcher
from grokterm.lab import Lab
from grokterm.lab.stream import COLUMN_METRIC, ColumnTail, StreamTail, loss_column_path
from grokterm.tui.series import RunSeries


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


class LabState:
    def __init__(self, lab: Lab):
        self.lab = lab
        self._tails: dict[str, RunTail] = {}

    def runs(self) -> list[dict[str, Any]]:
        return launcher.live_views(self.lab)

    def run(self, run_id: str) -> dict[str, Any]:
        return launcher.live_view(self.lab, self.lab.get_run(run_id))

    def tail(self, run_id: str) -> RunTail:
        if run_id not in self._tails:
            self._tails[run_id] = RunTail(self.lab, run_id)
        return self._tails[run_id]

    def events(self, run_id: str | None = None) -> list[dict[str, Any]]:
        return self.lab.events(run_id)

    def notes(self, run_id: str | None = None) -> list[dict[str, Any]]:
        return self.lab.notes(run_id)
