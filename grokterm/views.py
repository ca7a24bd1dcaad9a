"""What the CLI prints: run tables, one run, comparisons. Data first, then rich rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from grokterm.config import Experiment
from grokterm.lab import data_text
from grokterm.lab.records import PHASE_MARKS, Event, RunView, outcome_of


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def preset_row(name: str, exp: Experiment) -> dict[str, Any]:
    task = exp.task
    task_text = f"{task.kind}"
    if task.kind == "modular":
        task_text = f"(a{task.op}b) mod {task.p}, {task.train_fraction:.0%} train"
    elif task.kind == "toy_addition":
        task_text = f"a+b on 0..{task.n - 1}, {task.train_pairs} pairs train"
    elif task.kind in ("mnist", "digits"):
        task_text = f"{task.kind}, {task.n_train} train"
    return {
        "name": name,
        "task": task_text,
        "model": exp.model.kind,
        "steps": exp.schedule.steps,
        "description": exp.description,
    }


def presets_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="presets (grokterm run NAME)", title_justify="left")
    for column in ("name", "task", "model", "steps", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(fmt(row[c]) for c in ("name", "task", "model", "steps", "description")))
    return table


def runs_table(runs: list[RunView]) -> Table:
    table = Table()
    for column in (
        "id",
        "status",
        "step",
        "train",
        "test",
        "outcome",
        "t2",
        "t4",
        "tags",
        "created",
    ):
        table.add_column(column, no_wrap=column in ("id", "status", "created"))
    for view in runs:
        summary = view.summary
        table.add_row(
            view.id,
            view.status,
            f"{view.step}/{fmt(view.total)}",
            fmt(view.metric("train_acc")),
            fmt(view.metric("test_acc")),
            fmt(summary.get("phase")),
            fmt(summary.get("t2")),
            fmt(summary.get("t4")),
            ",".join(view.tags),
            (view.created or "")[5:16].replace("T", " "),
        )
    return table


def print_run(
    out: Console, view: RunView, events: list[Event], notes: list[dict], run_dir: Path
) -> None:
    summary = view.summary
    out.print(f"[bold]{view.id}[/]  {view.status}  step {view.step}/{view.total}")
    if view.reason:
        out.print(f"reason: {view.reason}")
    out.print(f"preset: {fmt(view.preset)}   dir: {run_dir}")
    if view.data:
        out.print(f"data: {data_text(view.data)}", markup=False)
    if summary:
        shown = {k: v for k, v in summary.items() if v is not None}
        out.print("summary: " + "  ".join(f"{k}={fmt(v)}" for k, v in shown.items()))
    table = Table(title="config", title_justify="left", show_header=False)
    for key, value in view.flat_config().items():
        table.add_row(key, str(value))
    out.print(table)
    out.print("[bold]events[/]" if events else "events: none yet")
    for event in events:
        out.print(f"  step {event.step:>8}  {event.kind:<8} {event.detail}")
    out.print("[bold]notes[/]" if notes else "notes: none")
    for note in notes:
        where = f"step {note['step']}" if note.get("step") is not None else "run"
        out.print(f"  {note['time'][:16].replace('T', ' ')}  {where}: {note['text']}", markup=False)


def config_diff(runs: list[RunView]) -> dict[str, list[Any]]:
    """Only the config fields whose values differ between the runs."""
    flats = [view.flat_config() for view in runs]
    return {key: [flat.get(key) for flat in flats] for key in differing_fields(flats)}


def differing_fields(flats: list[dict[str, Any]]) -> list[str]:
    """The dotted fields whose values are not the same in every flat config (a field one
    config lacks counts as None), sorted."""
    keys = sorted(set().union(*flats))
    return [key for key in keys if len({repr(flat.get(key)) for flat in flats}) > 1]


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


def print_comparison(out: Console, comparison: dict[str, Any]) -> None:
    ids = comparison["runs"]
    diff = Table(title="config fields that differ", title_justify="left")
    diff.add_column("field")
    for run_id in ids:
        diff.add_column(run_id)
    for key, values in comparison["config_diff"].items():
        diff.add_row(key, *(str(v) for v in values))
    if comparison["config_diff"]:
        out.print(diff)
    else:
        out.print("configs are identical")
    phases = Table(title="phase timings (steps)", title_justify="left")
    phases.add_column("")
    for run_id in ids:
        phases.add_column(run_id)
    rows = next(iter(comparison["phases"].values())).keys()
    for row in rows:
        phases.add_row(row, *(fmt(comparison["phases"][run_id][row]) for run_id in ids))
    out.print(phases)


def analysis(
    run_id: str, stored: list[Event], replayed: list[Event], thresholds: dict[str, Any]
) -> dict[str, Any]:
    """Stored events against a replay with other thresholds: what changes."""

    def by_kind(events: list[Event]) -> dict[str, list[Event]]:
        grouped: dict[str, list[Event]] = {}
        for event in events:
            grouped.setdefault(event.kind, []).append(event)
        return grouped

    before, after = by_kind(stored), by_kind(replayed)
    outcomes = {"stored": outcome_of(stored), "replayed": outcome_of(replayed)}
    rows = []
    for kind in dict.fromkeys([*before, *after]):
        old = [e.step for e in before.get(kind, [])]
        new = [e.step for e in after.get(kind, [])]
        detail = (after.get(kind) or before.get(kind))[-1].detail
        changed = old != new or (kind == "outcome" and outcomes["stored"] != outcomes["replayed"])
        rows.append(
            {"kind": kind, "stored": old, "replayed": new, "changed": changed, "detail": detail}
        )
    return {"run": run_id, "thresholds": thresholds, "events": rows, "outcome": outcomes}


def print_analysis(out: Console, analysis: dict[str, Any]) -> None:
    table = Table(title=f"{analysis['run']}: stored events vs a replay", title_justify="left")
    for column in ("event", "stored step", "replayed step", "replayed detail"):
        table.add_column(column, overflow="fold")
    for row in analysis["events"]:
        style = "bold yellow" if row["changed"] else ""
        table.add_row(
            row["kind"],
            ", ".join(map(str, row["stored"])) or "–",
            ", ".join(map(str, row["replayed"])) or "–",
            row["detail"],
            style=style,
        )
    out.print(table)
    outcome = analysis["outcome"]
    verdict = "unchanged" if outcome["stored"] == outcome["replayed"] else "CHANGED"
    out.print(f"outcome: stored {outcome['stored']}, replayed {outcome['replayed']} ({verdict})")
    changed = [row["kind"] for row in analysis["events"] if row["changed"]]
    out.print("changed events: " + (", ".join(changed) if changed else "none"))
