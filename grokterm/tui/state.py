"""What the TUI knows about the lab: live run views and incrementally tailed metric streams.

Everything here goes through the lab-log module and the live views; no torch, no Textual.
"""

from __future__ import annotations

import threading
from typing import Any

from grokterm import live
from grokterm.lab import Lab
from grokterm.lab.records import Event, RunView
from grokterm.lab.stream import StreamTail
from grokterm.tui.series import RunSeries


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


class LabState:
    def __init__(self, lab: Lab):
        self.lab = lab
        self._tails: dict[str, RunTail] = {}

    def runs(self) -> list[RunView]:
        return live.live_views(self.lab)

    def run(self, run_id: str) -> RunView:
        return live.live_view(self.lab, self.lab.get_run(run_id))

    def tail(self, run_id: str) -> RunTail:
        if run_id not in self._tails:
            self._tails[run_id] = RunTail(self.lab, run_id)
        return self._tails[run_id]

    def events(self, run_id: str | None = None) -> list[Event]:
        return self.lab.events(run_id)

    def notes(self, run_id: str | None = None) -> list[dict[str, Any]]:
        return self.lab.notes(run_id)
