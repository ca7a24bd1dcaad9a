"""The Python API for notebooks: `Lab(path).runs()`, `.run(ref).metrics()`, `.history()`,
`.model_at(step)`; `Lab(path).sweep(ref).table()`.

Records come from the lab log; `model_at` loads a checkpoint, so it imports torch on use;
`history()` and `table()` return pandas DataFrames, imported on use.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from grokterm.lab import store
from grokterm.lab.records import Event, RunRecord, RunStatus, SweepRecord
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

    def history(self, keys: list[str] | None = None):
        """The metric stream as a pandas DataFrame, one row per recorded step ("step" first,
        NaN where a metric was not measured), as W&B's run.history(); with keys, only those
        columns and the rows where one of them was measured."""
        import pandas as pd

        frame = pd.DataFrame(self.metrics())
        if keys is None:
            return frame
        missing = [key for key in keys if key not in frame.columns]
        if missing:
            known = ", ".join(c for c in frame.columns if c != "step")
            raise store.LabError(f"{self.id} has no metric {', '.join(missing)} ({known})")
        return frame[["step", *keys]].dropna(subset=keys, how="all").reset_index(drop=True)

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


class Sweep:
    """A sweep of the lab: its record, its cells as runs, and its table and analysis."""

    def __init__(self, lab: Lab, sweep_id: str):
        self.lab = lab
        self.id = sweep_id

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, cells={len(self.record.cells)})"

    @property
    def record(self) -> SweepRecord:
        return self.lab.get_sweep(self.id)

    def view(self):
        """Where the sweep stands: its cells' live views and its state."""
        from grokterm.sweep import control

        return control.view(self.lab, self.record)

    def runs(self) -> list[Run]:
        return [Run(self.lab, run_id) for run_id in self.record.cells]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per cell: run, its coordinates by field, status, step, outcome, t1..t4,
        t4-t2, final accuracies, losses and weight norm, m0 and the run's t4 threshold."""
        from grokterm.sweep.analysis import cell_rows

        return cell_rows(self.lab, self.view())

    def table(self):
        """The cells as a pandas DataFrame, one row per cell (columns as rows())."""
        import pandas as pd

        from grokterm.sweep.analysis import NUMBER_COLUMNS

        frame = pd.DataFrame(self.rows())
        return frame.astype({column: float for column in NUMBER_COLUMNS if column in frame})

    def analysis(self):
        """m0 against final test accuracy and the t4 power laws (see .lines(), .to_json())."""
        from grokterm.sweep.analysis import analyse

        return analyse(self.lab, self.view())

    def export(self, path: str | Path) -> Path:
        """The Markdown page with the phase diagrams (see `grokterm sweep export`)."""
        from grokterm.sweep.export import export_sweep

        return export_sweep(self.lab, self.id, Path(path))


class Lab(store.Lab):
    """A lab directory: the lab log plus its runs' files."""

    def runs(self) -> list[Run]:
        return [Run(self, record.id) for record in self.list_runs()]

    def run(self, ref: str | int) -> Run:
        return Run(self, self.resolve(str(ref)))

    def sweeps(self) -> list[Sweep]:
        return [Sweep(self, record.id) for record in self.list_sweeps()]

    def sweep(self, ref: str | int) -> Sweep:
        """A sweep by its id (sweep-1), number or name."""
        return Sweep(self, self.resolve_sweep(str(ref)))
