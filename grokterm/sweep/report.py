"""A sweep as data (one row per cell: its axes, status, outcome, phase times and final
metrics) and as the CLI prints it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from grokterm.lab.records import RunView
from grokterm.sweep.control import SweepView
from grokterm.views import fmt

if TYPE_CHECKING:
    from grokterm.sweep.analysis import SweepAnalysis

CELL_METRICS = ("train_acc", "test_acc")


def cell_row(sweep: SweepView, cell: RunView) -> dict[str, Any]:
    """One cell: run id, its coordinates by field, and where it stands."""
    coords = cell.coords or {}
    row: dict[str, Any] = {"run": cell.id}
    row.update({axis.field: coords.get(axis.field) for axis in sweep.record.axes})
    row.update(
        status=str(cell.status),
        step=cell.step,
        outcome=cell.summary.get("phase"),
        t1=cell.summary.get("t1"),
        t2=cell.summary.get("t2"),
        t3=cell.summary.get("t3"),
        t4=cell.summary.get("t4"),
    )
    row.update({metric: cell.metric(metric) for metric in CELL_METRICS})
    return row


def table_rows(sweep: SweepView) -> list[dict[str, Any]]:
    return [cell_row(sweep, cell) for cell in sweep.cells]


def sweep_json(sweep: SweepView, told: SweepAnalysis | None = None) -> dict[str, Any]:
    """The sweep as data; with its analysis (m₀ against test acc, t4 power laws) if given."""
    data = {
        **sweep.record.to_json(),
        "state": sweep.state,
        "counts": dict(sweep.counts),
        "table": table_rows(sweep),
    }
    if told is not None:
        data["analysis"] = told.to_json()
    return data


def axes_text(sweep: SweepView) -> str:
    parts = []
    for axis in sweep.record.axes:
        label = "seeds" if axis.replicate else axis.field
        parts.append(f"{label} ({len(axis.values)})")
    return " × ".join(parts)


def sweeps_table(sweeps: list[SweepView]) -> Table:
    table = Table()
    for column in ("id", "name", "base", "grid", "cells", "parallel", "state", "progress"):
        table.add_column(column, overflow="fold")
    for sweep in sweeps:
        record = sweep.record
        table.add_row(
            record.id,
            record.name,
            record.base,
            axes_text(sweep),
            str(len(record.cells)),
            str(record.parallel),
            sweep.state,
            sweep.progress(),
        )
    return table


def cells_table(sweep: SweepView) -> Table:
    record = sweep.record
    title = (
        f"{record.id} {record.name}: {axes_text(sweep)}, {record.parallel} at a time, "
        f"{sweep.state} ({sweep.progress()})"
    )
    table = Table(title=title, title_justify="left")
    rows = table_rows(sweep)
    columns = list(rows[0]) if rows else ["run"]
    for column in columns:
        table.add_column(column, overflow="fold", justify="left" if column == "run" else "right")
    axes = {axis.field for axis in record.axes}
    for row in rows:
        table.add_row(*(coord_text(row[c]) if c in axes else fmt(row[c]) for c in columns))
    return table


def coord_text(value: Any) -> str:
    """A grid value as short as it reads: 0.0001 as 1e-04, 3.0 as 3."""
    return f"{value:.4g}" if isinstance(value, float) else fmt(value)
