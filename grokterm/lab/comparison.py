"""Runs side by side: the config fields that differ and the phase timings, as data for the
CLI's `compare`, the TUI's compare screen and the Markdown export."""

from __future__ import annotations

from typing import Any

from grokterm.lab.records import PHASE_MARKS, RunView


def config_diff(runs: list[RunView]) -> dict[str, list[Any]]:
    """Only the config fields whose values differ between the runs."""
    flats = [view.flat_config() for view in runs]
    return {key: [flat.get(key) for flat in flats] for key in differing_fields(flats)}


def differing_fields(flats: list[dict[str, Any]]) -> list[str]:
    """The dotted fields whose values are not the same in every flat config (a field one
    config lacks counts as None), sorted."""
    keys = sorted(set().union(*flats))
    return [key for key in keys if len({repr(flat.get(key)) for flat in flats}) > 1]


# The rows of a phase-timing comparison (keys of phase_timings) and how they read.
PHASE_ROWS = [
    ("t1", "t1"),
    ("t2", "t2 memorized"),
    ("t3", "t3 comprehension"),
    ("t4", "t4 generalized"),
    ("t4-t2", "t4−t2"),
    ("outcome", "outcome"),
    ("train_acc", "final train acc"),
    ("test_acc", "final test acc"),
    ("status", "status"),
    ("step", "step"),
]


def phase_timings(view: RunView) -> dict[str, Any]:
    summary = view.summary
    marks = {k: summary.get(k) for k in PHASE_MARKS}
    gap = marks["t4"] - marks["t2"] if marks["t4"] is not None and marks["t2"] is not None else None
    return {
        **marks,
        "t4-t2": gap,
        "outcome": summary.get("phase"),
        "train_acc": view.metric("train_acc"),
        "test_acc": view.metric("test_acc"),
        "status": view.status.value,
        "step": view.step,
    }


def compare(runs: list[RunView]) -> dict[str, Any]:
    return {
        "runs": [view.id for view in runs],
        "config_diff": config_diff(runs),
        "phases": {view.id: phase_timings(view) for view in runs},
    }
