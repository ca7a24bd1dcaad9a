"""Markdown export of runs: one page comparing them (runs, phase timings, the config fields
that differ, overlaid charts), then each run's events, notes, summary and WeightWatcher
results. The PNGs go in a folder beside the Markdown, `<stem>_files/`, linked by relative path.

Every file is written atomically (charts first, the Markdown last), so a failed export
never leaves a half-written file or a page that links to a missing chart.
"""

from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from grokterm.lab.comparison import PHASE_ROWS, compare
from grokterm.lab.records import PHASE_MARKS, Event, RunView
from grokterm.lab.store import Lab, LabError, data_text, write_bytes_atomic
from grokterm.lab.stream import Columns, read_metrics, read_records, series
from grokterm.lab.ww_results import (
    COMPARED,
    comparison,
    live_steps,
    results_dir,
    step_used,
    stored_results,
)

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
LU_TITLE = "loss against weight norm (Omnigrok's LU view); time runs from ○ start to ● end"


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


def folded(summary: str, body: str) -> list[str]:
    """A <details> block GitHub renders closed; the blank lines keep its Markdown a table."""
    return ["<details>", f"<summary>{summary}</summary>", "", body, "", "</details>"]


# --- what is exported ---------------------------------------------------------------------


@dataclass
class ExportedRun:
    """One run as exported: its live view (phase marks so far), stream, events, notes."""

    view: RunView
    colour: str  # matplotlib colour, by the run's position in the export
    columns: Columns
    events: list[Event]
    notes: list[dict[str, Any]] = field(default_factory=list)
    note_labels: list[str | None] = field(default_factory=list)  # n1, n2, ... per note at a step

    @property
    def id(self) -> str:
        return self.view.id

    def marks(self) -> list[tuple[int, str]]:
        """Phase events and notes at a step, as (step, label) for the charts."""
        phases = [(e.step, e.kind) for e in self.events if e.kind in PHASE_MARKS]
        notes = [
            (note["step"], label)
            for note, label in zip(self.notes, self.note_labels, strict=True)
            if label is not None
        ]
        return phases + notes


def exported_runs(lab: Lab, views: list[RunView]) -> list[ExportedRun]:
    runs, counter = [], 0
    for position, view in enumerate(views):
        run = ExportedRun(
            view=view,
            colour=f"C{position % 10}",
            columns=read_metrics(lab.run_dir(view.id) / "metrics.jsonl"),
            events=lab.events(view.id),
            notes=lab.notes(view.id),
        )
        for note in run.notes:  # by position: an old lab log's notes may have no id
            label = None
            if note.get("step") is not None:
                counter += 1
                label = f"n{counter}"
            run.note_labels.append(label)
        runs.append(run)
    return runs


# --- charts ------------------------------------------------------------------------------


@dataclass
class Line:
    label: str
    xs: list
    ys: list
    style: dict


@dataclass
class ChartSpec:
    """One overlaid chart: its file, title, metrics (name, label, style) and y scale."""

    name: str
    title: str
    metrics: list[tuple[str, str, dict]]
    ylog: bool = False
    reference: tuple[float, str] | None = None  # a horizontal line (value, label)


CHARTS = [
    ChartSpec(
        "accuracy",
        "accuracy (solid test, dashed train)",
        [("test_acc", "test", {}), ("train_acc", "train", {"ls": "--", "alpha": 0.8})],
    ),
    ChartSpec(
        "loss",
        "loss (solid test, dashed train)",
        [("test_loss", "test", {}), ("train_loss", "train", {"ls": "--", "alpha": 0.8})],
        ylog=True,
    ),
    ChartSpec("weight-norm", "weight norm ‖θ‖₂", [("weight_norm", "", {})]),
    ChartSpec(
        "alpha",
        "HTSR alpha, mean over layers",
        [("alpha_mean", "", {})],
        reference=(2.0, "α = 2 (below: over-fit, per HTSR)"),
    ),
    ChartSpec(
        "spectral-energy",
        "spectral energy of the log loss (DFT, last window)",
        [("spectral/energy", "", {})],
        ylog=True,
    ),
]


def overlaid(runs: list[ExportedRun], spec: ChartSpec) -> list[Line]:
    lines = []
    for run in runs:
        for metric, label, style in spec.metrics:
            xs, ys = series(run.columns, metric)
            name = f"{run.id} {label}".strip() if len(runs) > 1 else (label or metric)
            lines.append(Line(name, xs, ys, {"color": run.colour, "lw": 1.2, **style}))
    return lines


def per_step_loss(run: ExportedRun) -> Line:
    xs, ys = series(run.columns, "loss")
    return Line("train (per step)", xs, ys, {"color": "grey", "alpha": 0.35, "lw": 0.7})


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(fig, path: Path, **savefig_args: Any) -> None:
    """The figure as a PNG at path, written atomically."""
    temp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temp, **savefig_args)
    os.replace(temp, path)


@contextmanager
def chart(path: Path, title: str):
    """The axes of a new figure, written atomically to path (as PNG) when the block ends."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8), dpi=110)
    try:
        yield ax
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)


def _plot(ax, line: Line, keep) -> None:
    points = [(x, y) for x, y in zip(line.xs, line.ys, strict=True) if keep(x, y)]
    if points:
        ax.plot(*zip(*points, strict=True), label=line.label, **line.style)


def save_chart(path: Path, spec: ChartSpec, lines: list[Line], runs: list[ExportedRun]) -> bool:
    """A chart over log step with each run's phase events and notes marked in its colour;
    False (and no file) when there is nothing to plot."""

    def keep(x, y) -> bool:
        return x > 0 and math.isfinite(y) and (y > 0 or not spec.ylog)

    if not any(keep(x, y) for line in lines for x, y in zip(line.xs, line.ys, strict=True)):
        return False
    with chart(path, spec.title) as ax:
        for line in lines:
            _plot(ax, line, keep)
        for row, run in enumerate(runs):
            _mark_steps(ax, run, row)
        if spec.reference:
            value, label = spec.reference
            ax.axhline(value, color="grey", lw=0.8, ls="--", label=label)
        ax.set_xscale("log")
        if spec.ylog:
            ax.set_yscale("log")
        ax.set_xlabel("step")
    return True


def _mark_steps(ax, run: ExportedRun, row: int) -> None:
    for step, label in run.marks():
        if step <= 0:
            continue
        style = ":" if label in PHASE_MARKS else "-."
        ax.axvline(step, color=run.colour, lw=0.8, ls=style, alpha=0.7)
        ax.text(
            step,
            0.97 - 0.08 * row,
            label,
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            ha="center",
            va="top",
            color=run.colour,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )


def save_trajectory(path: Path, runs: list[ExportedRun]) -> bool:
    """Test (solid) and train (dashed) loss against the weight norm, in step order, with
    each run's start, end and phase events on its path; False when nothing to plot."""
    paths = [(run, loss_against_norm(run)) for run in runs]
    if not any(points for _, by_split in paths for points in by_split.values()):
        return False
    with chart(path, LU_TITLE) as ax:
        for run, by_split in paths:
            for split, points in by_split.items():
                _trajectory(ax, run, split, points, label_runs=len(runs) > 1)
        ax.set_yscale("log")
        ax.set_xlabel("weight norm ‖θ‖₂")
    return True


def _trajectory(ax, run: ExportedRun, split: str, points: list, label_runs: bool) -> None:
    if not points:
        return
    steps, norms, losses = zip(*points, strict=True)
    style = {"ls": "--", "alpha": 0.8} if split == "train" else {}
    label = f"{run.id} {split}" if label_runs else split
    ax.plot(norms, losses, color=run.colour, lw=1.0, marker=".", ms=3, label=label, **style)
    ax.plot(norms[0], losses[0], "o", color=run.colour, mfc="white", ms=7)
    ax.plot(norms[-1], losses[-1], "o", color=run.colour, ms=7)
    if split != "test":
        return
    for event in run.events:
        if event.kind in PHASE_MARKS:
            index = min(range(len(steps)), key=lambda i: abs(steps[i] - event.step))
            ax.annotate(
                event.kind,
                (norms[index], losses[index]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=run.colour,
            )


def loss_against_norm(run: ExportedRun) -> dict[str, list[tuple[int, float, float]]]:
    """Per split, (step, weight norm, loss) at the probe steps that have both, in step
    order: the path the run took in the LU plane."""
    columns = run.columns
    norms = columns.get("weight_norm")
    out: dict[str, list[tuple[int, float, float]]] = {}
    for split in ("test", "train"):
        values = columns.get(f"{split}_loss")
        if norms is None or values is None:
            continue
        out[split] = [
            (int(step), n, v)
            for step, n, v in zip(columns["step"], norms, values, strict=True)
            if math.isfinite(n) and math.isfinite(v) and v > 0
        ]
    return out


def write_charts(runs: list[ExportedRun], folder: Path) -> dict[str, Path]:
    """The overlaid charts that have data, written into folder; title -> file."""
    written = {}
    for spec in CHARTS:
        lines = overlaid(runs, spec)
        if spec.name == "loss" and len(runs) == 1:
            lines.append(per_step_loss(runs[0]))
        path = folder / f"{spec.name}.png"
        if save_chart(path, spec, lines, runs):
            written[spec.title] = path
    path = folder / "loss-vs-norm.png"
    if save_trajectory(path, runs):
        written[LU_TITLE] = path
    return written


# --- markdown ----------------------------------------------------------------------------


def link(path: Path, target: Path) -> str:
    """A path relative to the Markdown, percent-encoded so spaces keep it a link."""
    return quote(path.relative_to(target.parent).as_posix())


def runs_table(runs: list[ExportedRun]) -> str:
    def row(label: str, value) -> list[Any]:
        return [label, *(value(run.view) for run in runs)]

    rows = [
        row("status", lambda v: v.status),
        row("preset", lambda v: v.preset),
        row("outcome", lambda v: v.summary.get("phase")),
        row("steps", lambda v: v.step),
        row("created", lambda v: v.created),
        row("device", lambda v: v.summary.get("device") or v.device),
        row("data", lambda v: data_text(v.data) if v.data else None),
        row("tags", lambda v: v.tags),
    ]
    if any(run.view.reason for run in runs):
        rows.append(row("reason", lambda v: v.reason))
    return table(["run", *(escape_markdown(run.id) for run in runs)], rows)


def timings_table(runs: list[ExportedRun], phases: dict[str, dict[str, Any]]) -> str:
    rows = [[label, *(phases[run.id][key] for run in runs)] for key, label in PHASE_ROWS]
    return table(["", *(escape_markdown(run.id) for run in runs)], rows)


def config_part(runs: list[ExportedRun], diff: dict[str, list[Any]]) -> list[str]:
    flat = runs[0].view.flat_config()
    same = [[key, value] for key, value in flat.items() if key not in diff]
    if len(runs) == 1:
        return folded(f"Config ({len(same)} fields)", table(["field", "value"], same))
    header = ["field", *(escape_markdown(run.id) for run in runs)]
    parts = [f"{len(diff)} field(s) differ:" if diff else "The configs are identical.", ""]
    if diff:
        parts += [table(header, [[key, *values] for key, values in diff.items()]), ""]
    if same:
        parts += folded(f"Unchanged config ({len(same)} fields)", table(["field", "value"], same))
    return parts


def run_section(lab: Lab, run: ExportedRun, target: Path, folder: Path) -> tuple[str, list[Path]]:
    parts = [f"## {escape_markdown(run.id)}", "", "### Phase timeline", ""]
    if run.events:
        rows = [[e.step, e.kind, e.detail] for e in run.events]
        parts.append(table(["step", "event", "detail"], rows))
    else:
        parts.append("No phase events were detected.")
    parts += ["", "### Notes", ""]
    for note, label in zip(run.notes, run.note_labels, strict=True):
        where = f"step {note['step']}" if note.get("step") is not None else "run"
        mark = f"{label}, " if label else ""
        parts.append(f"- **{where}** ({mark}{note['time']}): {escape_markdown(note['text'])}")
    if not run.notes:
        parts.append("No notes.")
    parts += ["", "### Summary", ""]
    shown = [[k, v] for k, v in run.view.summary.items() if v is not None]
    parts.append(table(["metric", "value"], shown) if shown else "No summary yet.")
    ww_parts, ww_images = weightwatcher_section(lab, run.id, target, folder)
    parts += [*ww_parts, ""]
    return "\n".join(parts), ww_images


def weightwatcher_section(
    lab: Lab, run_id: str, target: Path, folder: Path
) -> tuple[list[str], list[Path]]:
    """The results of `grokterm analyze RUN --weightwatcher`, if any: per checkpoint, its
    table beside the live values and its ESD plots, copied into the export's folder."""
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
                copy = copy_into(results_dir(run_dir) / name, folder / f"{run_id}-ww-{name}")
                if copy:
                    images.append(copy)
                    alt = escape_markdown(f"{row['layer']}: ESD at step {analysis['step']}")
                    parts.append(f"![{alt}]({link(copy, target)})")
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


def copy_into(source: Path, copy: Path) -> Path | None:
    """An atomic copy of `source` at `copy`, or None if the source is gone."""
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return None
    write_bytes_atomic(copy, data)
    return copy


def files_folder(target: Path) -> Path:
    """Where the export's PNGs go: `<stem>_files/` beside the Markdown."""
    return target.with_name(f"{target.stem}_files")


def check_target(target: Path) -> None:
    """An export goes to a .md file in a folder that exists."""
    if target.suffix.lower() != ".md":
        raise LabError(f"export target {target} must end in .md")
    if not target.parent.is_dir():
        raise LabError(f"export folder {target.parent} does not exist")


def export_runs(lab: Lab, views: list[RunView], target: Path) -> list[Path]:
    """Write target (.md) and its charts for these runs (their live views, phase marks so
    far included); returns the files written, Markdown first."""
    check_target(target)
    try:
        return _write_export(lab, exported_runs(lab, views), compare(views), target)
    except OSError as exc:  # a full disk, a read-only folder: the Markdown is not written
        raise LabError(f"cannot write the export {target}: {exc.strerror or exc}") from None


def _write_export(
    lab: Lab, runs: list[ExportedRun], compared: dict[str, Any], target: Path
) -> list[Path]:
    folder = files_folder(target)
    created = not folder.is_dir()
    folder.mkdir(exist_ok=True)
    charts = write_charts(runs, folder)
    title = ", ".join(escape_markdown(run.id) for run in runs)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [f"# grokterm lab log: {title}", "", f"_Exported {now} from `{lab.root}`._", ""]
    parts += ["## Runs", "", runs_table(runs), ""]
    parts += ["## Phase timings (steps)", "", timings_table(runs, compared["phases"]), ""]
    parts += ["## Config", "", *config_part(runs, compared["config_diff"]), ""]
    if charts:
        parts += ["## Charts", "", _marks_legend(runs), ""]
        for title, path in charts.items():  # a paragraph each: one chart under the other
            parts += [f"![{escape_markdown(title)}]({link(path, target)})", ""]
    images = list(charts.values())
    for run in runs:
        text, ww_images = run_section(lab, run, target, folder)
        parts.append(text)
        images += ww_images
    if created and not images:
        folder.rmdir()  # nothing to chart (a run that never probed): no empty folder
    write_bytes_atomic(target, "\n".join(parts).encode("utf-8"))
    return [target, *images]


def _marks_legend(runs: list[ExportedRun]) -> str:
    noted = any(any(run.note_labels) for run in runs)
    notes = "; notes at a step as dash-dotted lines labelled n1, n2, … (see each run's Notes)"
    return (
        "Steps on a log axis. Phase events t1–t4 are dotted lines in the run's colour"
        + (notes if noted else "")
        + "."
    )
