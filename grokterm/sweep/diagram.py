"""A sweep as a phase diagram (data only, no drawing): its cells placed on two of its axes,
the other axes held at one slice, the seeds of a point summed up as a majority outcome, and
a number per point for the numeric views. No torch, no Textual."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from grokterm.lab.records import ACTIVE, Outcome, RunStatus, RunView, SweepAxis, SweepRecord
from grokterm.sweep.control import SweepView

# Liu et al. 2022's colours (viridis' ends and middle) and one letter each, so the diagram
# reads without colour too.
OUTCOME_RGB = {
    Outcome.COMPREHENSION: (160, 218, 57),
    Outcome.GROKKING: (253, 231, 37),
    Outcome.MEMORIZATION: (70, 50, 126),
    Outcome.CONFUSION: (30, 30, 30),
}
OUTCOME_LETTER = {
    Outcome.COMPREHENSION: "C",
    Outcome.GROKKING: "G",
    Outcome.MEMORIZATION: "M",
    Outcome.CONFUSION: "X",
}
OUTCOME_VIEW = "outcome"
GAP = "t4-t2"  # the grokking delay, a view of its own
# What `v` steps through; any other numeric summary metric is one pick away.
NUMERIC_VIEWS = ("t4", GAP, "test_acc", "train_acc", "t2")
VIEW_LABELS = {OUTCOME_VIEW: "outcome", GAP: "t4 − t2", "test_acc": "final test acc"}


def view_label(view: str) -> str:
    return VIEW_LABELS.get(view, view)


def metric_value(run: RunView, key: str) -> float | None:
    """A run's number for a numeric view: a summary value or the last heartbeat's."""
    if key == GAP:
        t4, t2 = run.summary.get("t4"), run.summary.get("t2")
        value = t4 - t2 if number(t4) is not None and number(t2) is not None else None
    else:
        value = run.metric(key)
    return number(value)


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def numeric_keys(runs: list[RunView]) -> list[str]:
    """Every key that holds a number in some run's summary or heartbeat, for the picker."""
    keys = {GAP}
    for run in runs:
        for source in (run.summary, run.latest):
            keys.update(key for key, value in source.items() if number(value) is not None)
    return sorted(keys)


@dataclass(frozen=True)
class Point:
    """The runs at one place of the diagram: one per seed, in seed order."""

    runs: tuple[RunView, ...]

    @property
    def ids(self) -> list[str]:
        return [run.id for run in self.runs]

    @cached_property
    def outcomes(self) -> Counter[Outcome]:
        return Counter(Outcome(run.summary["phase"]) for run in self.runs if decided(run))

    @property
    def outcome(self) -> Outcome | None:
        """The seeds' majority outcome; a tie goes to the lowest seed's."""
        common = self.outcomes.most_common(1)
        return common[0][0] if common else None

    @property
    def agreeing(self) -> int:
        return self.outcomes[self.outcome] if self.outcome else 0

    @property
    def decided(self) -> int:
        return sum(self.outcomes.values())

    @property
    def disagrees(self) -> bool:
        return self.decided > self.agreeing

    @property
    def training(self) -> bool:
        return any(run.status in ACTIVE for run in self.runs)

    @property
    def running(self) -> bool:
        return any(run.status == RunStatus.RUNNING for run in self.runs)

    @property
    def progress(self) -> float:
        """The share of the point's steps trained so far."""
        done = sum(min(run.step, run.total or run.step) for run in self.runs)
        total = sum(run.total or 0 for run in self.runs)
        return done / total if total else 0.0

    def value(self, key: str) -> float | None:
        """The mean over seeds of the runs that have the number."""
        values = [v for v in (metric_value(run, key) for run in self.runs) if v is not None]
        return sum(values) / len(values) if values else None


def decided(run: RunView) -> bool:
    return run.summary.get("phase") in OUTCOME_LETTER


@dataclass(frozen=True)
class Diagram:
    x_axis: SweepAxis
    y_axis: SweepAxis | None  # None: a one-axis sweep, drawn as one row
    fixed: dict[str, Any]  # the other diagram axes, held at these values
    points: dict[tuple[int, int], Point]  # (x index, y index) -> its runs

    @property
    def width(self) -> int:
        return len(self.x_axis.values)

    @property
    def height(self) -> int:
        return len(self.y_axis.values) if self.y_axis else 1

    def point(self, x: int, y: int) -> Point | None:
        return self.points.get((x, y))

    def values(self, key: str) -> list[float]:
        found = (point.value(key) for point in self.points.values())
        return [value for value in found if value is not None]


def build(sweep: SweepView, x_field: str, y_field: str | None, fixed: dict[str, Any]) -> Diagram:
    """Place the sweep's cells that lie in the slice `fixed` on the x and y axes."""
    axes = {axis.field: axis for axis in sweep.record.axes}
    x_axis, y_axis = axes[x_field], axes[y_field] if y_field else None
    grouped: dict[tuple[int, int], list[RunView]] = {}
    for run in sweep.cells:
        coords = run.coords or {}
        if any(coords.get(field) != value for field, value in fixed.items()):
            continue
        place = (index_of(x_axis, coords), index_of(y_axis, coords) if y_axis else 0)
        if None not in place:
            grouped.setdefault(place, []).append(run)
    points = {place: Point(tuple(runs)) for place, runs in grouped.items()}
    return Diagram(x_axis, y_axis, fixed, points)


def index_of(axis: SweepAxis, coords: dict[str, Any]) -> int | None:
    value = coords.get(axis.field)
    return axis.values.index(value) if value in axis.values else None


def slices(record: SweepRecord, shown: list[str]) -> list[dict[str, Any]]:
    """Every way to hold the diagram axes not shown, in grid order ([{}] when none is left)."""
    others = [axis for axis in record.diagram_axes if axis.field not in shown]
    combos = itertools.product(*(axis.values for axis in others))
    fields = [axis.field for axis in others]
    return [dict(zip(fields, combo, strict=True)) for combo in combos]


def axis_pairs(record: SweepRecord) -> list[tuple[str, str | None]]:
    """The (x, y) pairs the diagram can show: every two diagram axes, first axis first. A
    sweep over seeds alone shows them along x."""
    fields = [axis.field for axis in record.diagram_axes or record.axes]
    if len(fields) < 2:
        return [(fields[0], None)] if fields else []
    return list(itertools.combinations(fields, 2))
