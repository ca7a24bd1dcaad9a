"""Markdown export of runs: config, phase timeline, notes, summary, and PNG charts beside it.

Every file is written atomically (charts first, the Markdown last), so a failed export
never leaves a half-written file or a page that links to a missing chart.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from grokterm.lab.records import PHASE_MARKS, Event
from grokterm.lab.store import Lab, LabError, data_text, write_bytes_atomic
from grokterm.lab.stream import read_metrics, read_records, series
from grokterm.lab.ww_results import (
    COMPARED,
    comparison,
    live_steps,
    results_dir,
    step_used,
    stored_results,
)

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def escape_markdown(text: str) -> str:
    """User text as literal Markdown: no HTML, no emphasis, no tables or links."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return "<br>".join(text.splitlines()) or " "


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return escape_markdown(", ".join(str(v) for v in value))
    return escape_markdown(str(value))


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --- charts ------------------------------------------------------------------------------


def save_chart(
    path: Path,
    title: str,
    curves: list[tuple[str, list, list, dict]],
    events: list[Event],
    ylog: bool,
    x_label: str = "step",
) -> bool:
    """A chart over log step (or, with another x_label, over a linear x); returns False when
    there is nothing to plot."""
    curves = [(label, xs, ys, style) for label, xs, ys, style in curves if _positive(xs)]
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    try:
        for label, xs, ys, style in curves:
            points = [(x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and math.isfinite(y)]
            if points:
                ax.plot(*zip(*points, strict=True), label=label, **style)
        for event in events:
            if event.kind in PHASE_MARKS and event.step > 0:
                ax.axvline(event.step, color="grey", lw=0.8, ls=":")
                ax.text(
                    event.step,
                    1.0,
                    event.kind,
                    transform=ax.get_xaxis_transform(),
                    fontsize=8,
                    ha="center",
                    va="bottom",
                    color="grey",
                )
        if x_label == "step":
            ax.set_xscale("log")
        if ylog:
            ax.set_yscale("log")
        ax.set_xlabel(x_label)
        ax.set_title(title, loc="left", fontsize=10, pad=14)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        temp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(temp)
        os.replace(temp, path)
    finally:
        plt.close(fig)
    return True


def _positive(xs: list) -> bool:
    return any(x > 0 for x in xs)


def run_charts(columns: dict, events: list[Event], base: Path, run_id: str) -> dict[str, Path]:
    def curve(name: str, label: str, **style) -> tuple[str, list, list, dict]:
        xs, ys = series(columns, name)
        return label, xs, ys, style

    charts = {
        "accuracy": (
            [curve("train_acc", "train"), curve("test_acc", "test")],
            False,
        ),
        "loss": (
            [
                curve("loss", "train (per step)", alpha=0.35, lw=0.7),
                curve("train_loss", "train"),
                curve("test_loss", "test"),
            ],
            True,
        ),
    }
    written = {}
    for kind, (curves, ylog) in charts.items():
        path = base.with_name(f"{base.stem}-{run_id}-{kind}.png")
        if save_chart(path, f"{run_id}: {kind}", curves, events, ylog):
            written[kind] = path
    path = base.with_name(f"{base.stem}-{run_id}-loss-vs-norm.png")
    title = f"{run_id}: loss against weight norm (Omnigrok's LU view)"
    if save_chart(path, title, loss_against_norm(columns), [], True, x_label="‖θ‖₂"):
        written["loss vs weight norm"] = path
    return written


def loss_against_norm(columns: dict) -> list[tuple[str, list, list, dict]]:
    """Train and test loss paired with the weight norm of the same probe, in step order."""
    norms = columns.get("weight_norm")
    curves = []
    for name, label in (("train_loss", "train"), ("test_loss", "test")):
        values = columns.get(name)
        if norms is None or values is None:
            continue
        pairs = [(n, v) for n, v in zip(norms, values, strict=True) if n == n and v == v]
        if pairs:
            xs, ys = zip(*pairs, strict=True)
            curves.append((label, list(xs), list(ys), {"marker": ".", "lw": 0.8}))
    return curves


# --- markdown ----------------------------------------------------------------------------


def run_section(lab: Lab, run_id: str, target: Path) -> tuple[str, list[Path]]:
    record = lab.get_run(run_id)
    events, notes = lab.events(run_id), lab.notes(run_id)
    columns = read_metrics(lab.run_dir(run_id) / "metrics.jsonl")
    charts = run_charts(columns, events, target, run_id)
    summary = record.summary
    parts = [f"## {escape_markdown(run_id)}", ""]
    overview = [
        ["status", record.status],
        ["preset", record.preset],
        ["outcome", summary.get("phase")],
        ["steps", record.step],
        ["created", record.created],
        ["device", summary.get("device")],
        ["data", data_text(record.data) if record.data else None],
        ["tags", record.tags],
    ]
    if record.reason:
        overview.append(["reason", record.reason])
    parts += [table(["run", escape_markdown(run_id)], overview), ""]
    parts += ["### Phase timeline", ""]
    if events:
        parts.append(
            table(["step", "event", "detail"], [[e.step, e.kind, e.detail] for e in events])
        )
    else:
        parts.append("No phase events were detected.")
    parts += ["", "### Summary", ""]
    shown = [[k, v] for k, v in summary.items() if v is not None]
    parts.append(table(["metric", "value"], shown) if shown else "No summary yet.")
    parts += ["", "### Notes", ""]
    for note in notes:
        where = f"step {note['step']}" if note.get("step") is not None else "run"
        parts.append(f"- **{where}** ({note['time']}): {escape_markdown(note['text'])}")
    if not notes:
        parts.append("No notes.")
    if charts:
        parts += ["", "### Charts", ""]
        parts += [f"![{kind}]({quote(path.name)})" for kind, path in charts.items()]
    ww_parts, ww_images = weightwatcher_section(lab, run_id, target)
    parts += ww_parts
    config_rows = [[k, v] for k, v in record.flat_config().items()]
    parts += ["", "### Config", "", table(["field", "value"], config_rows), ""]
    return "\n".join(parts), [*charts.values(), *ww_images]


def weightwatcher_section(lab: Lab, run_id: str, target: Path) -> tuple[list[str], list[Path]]:
    """The results of `grokterm analyze RUN --weightwatcher`, if any: per checkpoint, its
    table beside the live values and its ESD plots, copied beside the Markdown."""
    run_dir = lab.run_dir(run_id)
    results = stored_results(run_dir)
    if not results:
        return [], []
    records = read_records(run_dir / "metrics.jsonl")
    parts, images = ["", "### WeightWatcher", ""], []
    for result in results:
        analysis = comparison(result, records)
        parts += weightwatcher_table(analysis)
        for row in analysis["rows"]:
            for name in row["images"]:
                copy = copy_beside(results_dir(run_dir) / name, target, f"{run_id}-ww-{name}")
                if copy:
                    images.append(copy)
                    alt = escape_markdown(f"{row['layer']}: ESD at step {analysis['step']}")
                    parts.append(f"![{alt}]({quote(copy.name)})")
        parts.append("")
    return parts, images


def weightwatcher_table(analysis: dict[str, Any]) -> list[str]:
    step = analysis["step"]
    intro = (
        f"WeightWatcher {analysis['weightwatcher']} on {step_used(step, step)}; "
        f"{live_steps(analysis['rows'], step)}."
    )
    header = ["layer"] + [f"{label} {who}" for label in COMPARED.values() for who in ("WW", "live")]
    rows = [
        [row["layer"], *(row[who][column] for column in COMPARED for who in ("ww", "live"))]
        for row in analysis["rows"]
    ]
    notes = [
        f"- {escape_markdown(row['layer'])}: {escape_markdown(row['note'])}"
        for row in analysis["rows"]
        if row["note"]
    ]
    return [escape_markdown(intro), "", table(header, rows), "", *notes, *([""] if notes else [])]


def copy_beside(source: Path, target: Path, name: str) -> Path | None:
    """An atomic copy of `source` next to the Markdown `target`, or None if it is gone."""
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return None
    copy = target.with_name(f"{target.stem}-{name}")
    write_bytes_atomic(copy, data)
    return copy


def export_runs(lab: Lab, run_ids: list[str], target: Path) -> list[Path]:
    """Write target (.md) and its charts; returns the files written, Markdown first."""
    if target.suffix.lower() != ".md":
        raise LabError(f"export target {target} must end in .md")
    if not target.parent.is_dir():
        raise LabError(f"export folder {target.parent} does not exist")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    sections, charts = [], []
    for run_id in run_ids:
        text, paths = run_section(lab, run_id, target)
        sections.append(text)
        charts += paths
    title = ", ".join(escape_markdown(run_id) for run_id in run_ids)
    header = f"# grokterm lab log: {title}\n\n_Exported {now} from `{lab.root}`._\n"
    write_bytes_atomic(target, "\n".join([header, *sections]).encode("utf-8"))
    return [target, *charts]
