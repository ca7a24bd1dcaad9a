"""The Python API for notebooks: `Lab(path).runs()`, `.run(ref).metrics()`, `.model_at(step)`.

Records come from the lab log; `model_at` loads a checkpoint, so it imports torch on use.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from grokterm.lab import store
from grokterm.lab.records import Event, RunRecord, RunStatus
from grokterm.lab.stream import read_metrics, series


class Run:
    def __init__(self, lab: Lab, run_id: str):
        self.lab = lab
        self.id = run_id
        self.dir: Path = lab.run_dir(run_id)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.record.status.value!r})"

    @property
    def record(self) -> RunRecord:
        return self.lab.get_run(self.id)

    @cached_property
    def config(self) -> dict[str, Any]:
        return self.record.config

    @property
    def status(self) -> RunStatus:
        from grokterm.live import live_view

        return live_view(self.lab, self.record).status

    @property
    def summary(self) -> dict[str, Any]:
        return self.record.summary

    def metrics(self) -> dict[str, list[float]]:
        """Columns by name, aligned on 'step' (NaN where a record lacks a metric)."""
        return read_metrics(self.dir / "metrics.jsonl")

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, only where it was measured."""
        return series(self.metrics(), name)

    def events(self) -> list[Event]:
        return self.lab.events(self.id)

    def notes(self) -> list[dict[str, Any]]:
        return self.lab.notes(self.id)

    def note(self, text: str, step: int | None = None) -> dict[str, Any]:
        return self.lab.add_note(text, run_id=self.id, step=step)

    def checkpoints(self) -> list[int]:
        from grokterm.lab.checkpoint_files import list_checkpoints

        return list(list_checkpoints(self.dir / "checkpoints"))

    def model_at(self, step: int | None = None, device: str = "cpu"):
        """The model at a checkpoint (the last one when step is None), in eval mode."""
        from grokterm.engine.checkpoints import load_model

        return load_model(self.dir, step, device)


class Lab(store.Lab):
    """A lab directory: the lab log plus its runs' files."""

    def runs(self) -> list[Run]:
        return [Run(self, record.id) for record in self.list_runs()]

    def run(self, ref: str | int) -> Run:
        return Run(self, self.resolve(str(ref)))
