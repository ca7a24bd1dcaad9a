"""What a sweep tells (#11): seed 003's early-loss statistic m₀ set against each cell's final
test accuracy (Spearman's ρ and the ROC AUC of m₀ for "generalized"), and t4 against each
numeric axis as a power law, log t4 = c − γ log x (seed 003: t4(r) ∈ Θ(r^−γ) over the train
fraction r). Also the phase diagram as data: the cells grouped by their diagram coordinates,
seeds reduced to their majority outcome.

Plain numpy: no Textual, no matplotlib, no pandas (the TUI and the CLI read this).
Replicate seeds count as separate points of the statistics: n counts runs.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from grokterm.config import Detector
from grokterm.lab import Lab
from grokterm.lab.records import ACTIVE, Event, RunStatus, RunView, SweepAxis, SweepRecord
from grokterm.lab.stream import read_records
from grokterm.sweep.control import SweepView
from grokterm.sweep.report import cell_row, coord_text

FORECAST_METRIC = "forecast/m0"  # in the metric stream; "forecast_m0" in summaries and events
MIN_POINTS = 3  # fewer cells than this: no correlation, no fit
FINAL_METRICS = ("best_test_acc", "train_loss", "test_loss", "weight_norm")
# The columns of cell_rows that hold a number or nothing (NaN in a DataFrame).
NUMBER_COLUMNS = ("t1", "t2", "t3", "t4", "t4-t2", "train_acc", "test_acc", *FINAL_METRICS, "m0")


# --- the cells as rows ---------------------------------------------------------------------


def cell_rows(lab: Lab, sweep: SweepView) -> list[dict[str, Any]]:
    """One row per cell (run): report.cell_row plus t4−t2, the final losses and weight norm,
    m₀ of the early loss, and the run's own `generalized` threshold."""
    forecasts = {event.run: event for event in lab.events() if event.kind == "forecast"}
    return [_cell_facts(lab, sweep, cell, forecasts.get(cell.id)) for cell in sweep.cells]


def _cell_facts(
    lab: Lab, sweep: SweepView, cell: RunView, forecast: Event | None
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in cell_row(sweep, cell).items():
        row[key] = value
        if key == "t4":
            t2 = row["t2"]
            row["t4-t2"] = value - t2 if t2 is not None and value is not None else None
    row.update({metric: cell.metric(metric) for metric in FINAL_METRICS})
    row["m0"] = early_loss_m0(lab, cell, forecast)
    row["generalized"] = generalized_threshold(cell)
    return row


def early_loss_m0(lab: Lab, cell: RunView, forecast: Event | None = None) -> float | None:
    """m₀ of the run's early loss: from its summary (written at its end), else its forecast
    event, else its metric stream (runs that recorded it before either existed)."""
    value = cell.summary.get("forecast_m0")
    if value is None and forecast is not None:
        value = (forecast.model_extra or {}).get("forecast_m0")
    if value is None and cell.step > 0:
        path = lab.run_dir(cell.id) / "metrics.jsonl"
        value = next((r[FORECAST_METRIC] for r in read_records(path) if FORECAST_METRIC in r), None)
    return _finite(value)


def generalized_threshold(cell: RunView) -> float:
    """The test accuracy at which the run's detector marks t4 (its config, else the default)."""
    detector = cell.config.get("detector") or {}
    return float(detector.get("generalized", Detector.model_fields["generalized"].default))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# --- statistics ----------------------------------------------------------------------------


def ranks(values: list[float]) -> np.ndarray:
    """1-based ranks, ties given their average rank (as Spearman's ρ needs)."""
    data = np.asarray(values, dtype=float)
    order = np.argsort(data, kind="stable")
    ranked = np.empty(len(data))
    ranked[order] = np.arange(1, len(data) + 1)
    for value in np.unique(data):
        tied = data == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation; None when either side is constant."""
    rx, ry = ranks(xs), ranks(ys)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / scale) if scale > 0 else None


def roc_auc(scores: list[float], positive: list[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U);
    None unless both classes are present. 0.5 is chance; below 0.5, low scores predict."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        return None
    rank = ranks([*pos, *neg])
    u = float(rank[: len(pos)].sum()) - len(pos) * (len(pos) + 1) / 2
    return u / (len(pos) * len(neg))


@dataclass(frozen=True)
class PowerLaw:
    """log t4 = c − γ log x fitted by least squares over the cells that reached t4."""

    field: str
    n: int  # cells in the fit
    gamma: float | None = None
    stderr: float | None = None  # of γ
    c: float | None = None  # natural log of the prefactor
    r2: float | None = None  # None when every t4 is the same
    left_out: int = 0  # cells with t4 at x ≤ 0, which no power law reaches
    why: str | None = None  # why there is no fit

    def line(self) -> str:
        aside = f"; {self.left_out} cell(s) at {self.field} ≤ 0 left out" if self.left_out else ""
        if self.gamma is None:
            return f"t4 against {self.field}: {self.why}{aside}"
        r2 = "–" if self.r2 is None else f"{self.r2:.3f}"
        return (
            f"t4 ∝ {self.field}^−γ: γ = {self.gamma:.3g} ± {self.stderr:.2g} "
            f"(n = {self.n}, R² = {r2}){aside}"
        )

    def predict(self, x: float) -> float:
        assert self.gamma is not None and self.c is not None
        return math.exp(self.c - self.gamma * math.log(x))


def fit_power_law(field_name: str, xs: list[float], t4s: list[float]) -> PowerLaw:
    """Least squares of log t4 on log x; x ≤ 0 is left out (and counted), t4 must be > 0."""
    points = [(x, t) for x, t in zip(xs, t4s, strict=True) if x > 0 and t > 0]
    left_out = len(xs) - len(points)
    n = len(points)
    if n < MIN_POINTS:
        why = f"too few cells ({n} reached t4; a fit needs {MIN_POINTS})"
        return PowerLaw(field_name, n, left_out=left_out, why=why)
    lx = np.log([x for x, _ in points])
    ly = np.log([t for _, t in points])
    sxx = float(((lx - lx.mean()) ** 2).sum())
    if sxx == 0:
        why = f"every cell that reached t4 has the same {field_name}"
        return PowerLaw(field_name, n, left_out=left_out, why=why)
    slope = float(((lx - lx.mean()) * (ly - ly.mean())).sum()) / sxx
    c = float(ly.mean()) - slope * float(lx.mean())
    residual = float(((ly - (c + slope * lx)) ** 2).sum())
    total = float(((ly - ly.mean()) ** 2).sum())
    stderr = math.sqrt(residual / (n - 2) / sxx)  # n ≥ MIN_POINTS = 3
    r2 = 1 - residual / total if total > 0 else None
    return PowerLaw(field_name, n, -slope, stderr, c, r2, left_out)


@dataclass(frozen=True)
class ForecastReading:
    """m₀ of the early loss against final test accuracy over the finished cells."""

    n: int  # finished cells with both m₀ and a final test accuracy
    rho: float | None = None
    auc: float | None = None
    generalized: int = 0  # of the n, how many ended at or above their t4 threshold
    why: str | None = None

    def line(self) -> str:
        head = "m₀ of the early loss (seed 003) against final test acc"
        if self.why:
            return f"{head}: {self.why}"
        rho = "–" if self.rho is None else f"{self.rho:+.2f}"
        text = f"{head}: Spearman ρ = {rho} (n = {self.n})"
        if self.auc is None:
            return f"{text}; no AUC: {self.generalized} of {self.n} generalized (needs both)"
        return (
            f"{text}; ROC AUC of m₀ for generalized = {self.auc:.2f} "
            f"({self.generalized} of {self.n} generalized; below 0.5, low m₀ predicts it)"
        )


def read_forecast(rows: list[dict[str, Any]]) -> ForecastReading:
    points = [
        (row["m0"], row["test_acc"], row["generalized"])
        for row in rows
        if row["status"] == RunStatus.FINISHED
        and row["m0"] is not None
        and _finite(row["test_acc"]) is not None
    ]
    n = len(points)
    if n < MIN_POINTS:
        return ForecastReading(n, why=f"too few finished cells with m₀ ({n}; needs {MIN_POINTS})")
    m0s = [m0 for m0, _, _ in points]
    accs = [acc for _, acc, _ in points]
    generalized = [acc >= threshold for _, acc, threshold in points]
    rho = spearman(m0s, accs)
    auc = roc_auc(m0s, generalized)
    return ForecastReading(n, rho, auc, sum(generalized))


def is_numeric(axis: SweepAxis) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in axis.values)


def numeric_axes(record: SweepRecord) -> list[SweepAxis]:
    return [axis for axis in record.diagram_axes if is_numeric(axis)]


def t4_points(rows: list[dict[str, Any]], field_name: str) -> list[tuple[float, float, str]]:
    """(x, t4, outcome) of the cells that reached t4."""
    return [
        (float(row[field_name]), float(row["t4"]), row["outcome"])
        for row in rows
        if row["t4"] is not None and row.get(field_name) is not None
    ]


@dataclass(frozen=True)
class SweepAnalysis:
    forecast: ForecastReading
    power_laws: list[PowerLaw] = field(default_factory=list)

    def lines(self) -> list[str]:
        laws = [law.line() for law in self.power_laws]
        if not self.power_laws:
            laws = ["t4 against the axes: no numeric diagram axis"]
        return [self.forecast.line(), *laws]

    def to_json(self) -> dict[str, Any]:
        return {
            "forecast": asdict(self.forecast),
            "power_laws": [asdict(law) for law in self.power_laws],
            "lines": self.lines(),
        }


def analyse_rows(record: SweepRecord, rows: list[dict[str, Any]]) -> SweepAnalysis:
    laws = []
    for axis in numeric_axes(record):
        points = t4_points(rows, axis.field)
        laws.append(fit_power_law(axis.field, [x for x, _, _ in points], [t for _, t, _ in points]))
    return SweepAnalysis(read_forecast(rows), laws)


def analyse(lab: Lab, sweep: SweepView) -> SweepAnalysis:
    return analyse_rows(sweep.record, cell_rows(lab, sweep))


# --- the phase diagram as data ------------------------------------------------------------


@dataclass(frozen=True)
class DiagramCell:
    """A point of the diagram: its value index on each diagram axis and its runs (one per
    seed), reduced to the majority outcome."""

    index: tuple[int, ...]
    rows: list[dict[str, Any]]

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(row["outcome"] for row in self.rows if row["outcome"])

    @property
    def outcome(self) -> str | None:
        """The most common outcome among the seeds that have one (the first seen on a tie)."""
        common = self.outcomes.most_common(1)
        return common[0][0] if common else None

    @property
    def agreement(self) -> tuple[int, int]:
        """(seeds with the majority outcome, seeds with an outcome)."""
        outcomes = self.outcomes
        return (outcomes.most_common(1)[0][1] if outcomes else 0), sum(outcomes.values())

    @property
    def disagree(self) -> bool:
        agree, decided = self.agreement
        return agree < decided

    @property
    def waiting(self) -> bool:
        """No outcome yet and a seed still queued or training."""
        return self.outcome is None and any(row["status"] in ACTIVE for row in self.rows)

    def number(self, key: str) -> float | None:
        """The mean of a number over the seeds that have it."""
        values = [v for row in self.rows if (v := _finite(row.get(key))) is not None]
        return statistics.fmean(values) if values else None

    def count(self, key: str) -> tuple[int, int]:
        """(seeds that have the number, seeds)."""
        return sum(_finite(row.get(key)) is not None for row in self.rows), len(self.rows)


def diagram_cells(record: SweepRecord, rows: list[dict[str, Any]]) -> list[DiagramCell]:
    """The diagram's points in grid order (first axis slowest), seeds grouped."""
    axes = record.diagram_axes
    grouped: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for row in rows:
        try:
            index = tuple(axis.values.index(row[axis.field]) for axis in axes)
        except (KeyError, ValueError):
            continue  # a run whose coordinates are not on the grid (edited by hand)
        grouped.setdefault(index, []).append(row)
    return [DiagramCell(index, cell_rows_) for index, cell_rows_ in sorted(grouped.items())]


def value_text(axis: SweepAxis, index: int) -> str:
    return coord_text(axis.values[index])
