"""The shapes of what the lab stores: run records, detected events and a run's status.json.

One definition each, read tolerantly: a lab log or status file written by an older
version (keys missing, or keys this version does not know) loads, and unknown keys are
kept when the record is written back. No torch here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    CRASHED = "crashed"
    DIVERGED = "diverged"


# A StrEnum member equals its text, so a plain "running" is found in these sets too.
ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINAL = frozenset(RunStatus) - ACTIVE
RESUMABLE = frozenset({RunStatus.STOPPED, RunStatus.CRASHED})
# Ends that are no failure: the run trained until it was done or was asked to stop.
ENDED_CLEANLY = frozenset({RunStatus.FINISHED, RunStatus.STOPPED})


# The kinds of the events that mark a phase (DESIGN §7): end of confusion, memorization,
# comprehension onset, generalization.
PHASE_MARKS = ("t1", "t2", "t3", "t4")


class Outcome(StrEnum):
    """A run's phase verdict (Liu et al. 2022), shown as its phase."""

    CONFUSION = "confusion"
    MEMORIZATION = "memorization"
    COMPREHENSION = "comprehension"
    GROKKING = "grokking"


OUTCOME_WORDS = frozenset(outcome.value for outcome in Outcome)


class Stored(BaseModel):
    """A stored shape: unknown keys are kept, and a record reads as JSON-ready data."""

    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        # Python mode: enums stay StrEnums (json writes them as their text) and a diverged
        # run's NaN stays NaN, as the lab has always stored it; JSON mode would write null.
        return self.model_dump()


class RunRecord(Stored):
    """A run in the lab log's `runs` table."""

    id: str
    seq: int = 0
    name: str = ""
    preset: str | None = None
    config: dict[str, Any] = {}
    tags: list[str] = []
    status: RunStatus = RunStatus.QUEUED
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    step: int = 0
    summary: dict[str, Any] = {}
    reason: str | None = None
    # Set once the run's process is started, or as it runs:
    pid: int | None = None
    host: str | None = None
    device: str | None = None
    data: dict[str, Any] | None = None
    stop_requested: bool = False
    # A sweep's cell: the sweep's id and the cell's grid coordinates (dotted field -> value).
    sweep: str | None = None
    coords: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls_as_defaults(cls, data: Any) -> Any:
        # Old logs hold null where this version keeps an empty container.
        if isinstance(data, dict):
            for key in ("summary", "config", "tags"):
                if key in data and data[key] is None:
                    data = {k: v for k, v in data.items() if k != key}
        return data

    @property
    def total(self) -> int | None:
        """The number of steps the run was configured to train."""
        return (self.config.get("schedule") or {}).get("steps")

    def flat_config(self) -> dict[str, Any]:
        """The config by dotted field name (optim.lr), as --set names the fields."""
        return _flatten(self.config)


class RunView(RunRecord):
    """A run as it is now: its record, with what its status.json adds while it trains."""

    latest: dict[str, Any] = {}
    heartbeat: float | None = None

    def metric(self, key: str) -> Any:
        """A metric's value from the last heartbeat, else from the run's summary."""
        value = self.latest.get(key)
        return value if value is not None else self.summary.get(key)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "total": self.total}


class Event(Stored):
    """A detected event in the lab log's `events` table (t1..t4, outcome, slingshot, ...)."""

    step: int
    kind: str
    detail: str = ""
    thresholds: dict[str, Any] = {}
    run: str | None = None
    time: str | None = None
    outcome: Outcome | None = None  # set on events of kind "outcome"

    @model_validator(mode="before")
    @classmethod
    def _outcome_of_old_logs(cls, data: Any) -> Any:
        # Before the field existed the outcome was only the first word of the detail.
        if isinstance(data, dict) and data.get("kind") == "outcome" and not data.get("outcome"):
            word = str(data.get("detail") or "").split(":", 1)[0].strip()
            if word in OUTCOME_WORDS:
                data = {**data, "outcome": word}
        return data


class StatusFile(Stored):
    """runs/<id>/status.json: the heartbeat of a run's process, and the truth about its end."""

    status: RunStatus | None = None
    pid: int | None = None
    pid_started: int | None = None  # the process's start time, so a reused pid is not it
    host: str | None = None
    device: str | None = None
    heartbeat: float | None = None
    step: int | None = None
    total: int | None = None
    latest: dict[str, Any] = {}
    reason: str | None = None
    ended: str | None = None
    summary: dict[str, Any] = {}

    @property
    def written(self) -> bool:
        """False for the empty status of a run whose process has not written one yet."""
        return bool(self.model_fields_set)

    @property
    def final(self) -> bool:
        return self.status in FINAL


class SweepAxis(Stored):
    field: str
    values: list[Any]
    replicate: bool = False  # seeds: repeats of a cell, not a coordinate of the diagram


class SweepRecord(Stored):
    """A sweep in the lab log's `sweeps` table: its definition, its cells (ordinary runs, in
    grid order) and its scheduler process."""

    id: str
    seq: int = 0
    name: str = ""
    base: str = ""
    preset: str | None = None
    overrides: list[str] = []
    axes: list[SweepAxis] = []
    parallel: int = 1
    cells: list[str] = []  # run ids
    created: str | None = None
    scheduler_pid: int | None = None
    scheduler_started: int | None = None  # the process's start ticks (a reused pid is not it)
    host: str | None = None
    stop_requested: bool = False

    @property
    def diagram_axes(self) -> list[SweepAxis]:
        return [axis for axis in self.axes if not axis.replicate]


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def outcome_of(events: list[Event]) -> Outcome | None:
    """The last outcome among the events, if any was decided."""
    outcomes = [event.outcome for event in events if event.kind == "outcome" and event.outcome]
    return outcomes[-1] if outcomes else None
