"""Markdown export of a sweep (#11): the phase diagram as two PNGs (cells coloured by outcome
in Liu et al.'s colours, and by t4 with a colour bar), what the sweep tells (m₀ against final
test accuracy, t4 against each numeric axis with its power-law fit, log-log), a table of the
cells and their notes. The PNGs go in `<stem>_files/` beside the Markdown, as for runs.

Seeds: a diagram point shows its seeds' majority outcome and marks a disagreement "k/n".
More than two diagram axes: the first two span each diagram, and there is one diagram per
value of the others (small multiples in one PNG). No Textual here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grokterm import live
from grokterm.lab import Lab, LabError
from grokterm.lab.export import (
    chart,
    check_target,
    escape_markdown,
    files_folder,
    link,
    pyplot,
    save_figure,
    table,
)
from grokterm.lab.records import SweepAxis, SweepRecord
from grokterm.lab.store import write_bytes_atomic
from grokterm.sweep import analysis, control
from grokterm.sweep.diagram import OUTCOME_RGB  # Liu et al.'s colours, as the TUI draws them
from grokterm.sweep.report import axes_text, coord_text

DARK_OUTCOMES = {"memorization", "confusion"}  # their marks are written in white
NUMBER = "t4"  # the number of the second diagram
MAX_PANELS = 16  # slices of a sweep over more than two diagram axes drawn side by side
MAX_TICKS = 12  # a linear axis with more values leaves its ticks to matplotlib
CELL_COLUMNS = [
    ("status", "status"),
    ("step", "step"),
    ("outcome", "outcome"),
    ("t1", "t1"),
    ("t2", "t2"),
    ("t3", "t3"),
    ("t4", "t4"),
    ("t4-t2", "t4−t2"),
    ("train_acc", "final train acc"),
    ("test_acc", "final test acc"),
    ("m0", "m₀"),
]


def rgb(outcome: str) -> tuple[float, float, float]:
    red, green, blue = OUTCOME_RGB[outcome]
    return red / 255, green / 255, blue / 255


# --- where the cells go on an axis ---------------------------------------------------------


@dataclass(frozen=True)
class AxisLayout:
    """Cell edges along one axis: at the values themselves on a log or linear scale when
    they are evenly spaced there, else one slot per value with the values as tick labels."""

    label: str
    edges: list[float]
    scale: str = "linear"
    ticks: list[float] | None = None  # slots: their centres and labels
    tick_labels: list[str] | None = None

    def span(self, index: int) -> tuple[float, float]:
        return self.edges[index], self.edges[index + 1]


def spacing(values: list[Any]) -> str | None:
    """'log' when the values grow by a constant factor, 'linear' by a constant step."""
    if len(values) < 2 or not all(isinstance(v, int | float) for v in values):
        return None
    steps = [b - a for a, b in itertools.pairwise(values)]
    if min(steps) <= 0:
        return None
    if values[0] > 0:
        ratios = [b / a for a, b in itertools.pairwise(values)]
        even = all(math.isclose(r, ratios[0], rel_tol=1e-3) for r in ratios)
        if even and (len(values) > 2 or ratios[0] >= 10):
            return "log"
    if all(math.isclose(s, steps[0], rel_tol=1e-3) for s in steps):
        return "linear"
    return None


def layout(axis: SweepAxis | None) -> AxisLayout:
    if axis is None:  # a sweep with fewer than two diagram axes: one row (or column)
        return AxisLayout("", [0.0, 1.0], ticks=[], tick_labels=[])
    values, kind = axis.values, spacing(axis.values)
    if kind == "log":
        ratio = values[1] / values[0]
        inner = [math.sqrt(a * b) for a, b in itertools.pairwise(values)]
        edges = [values[0] / math.sqrt(ratio), *inner, values[-1] * math.sqrt(ratio)]
        return AxisLayout(axis.field, edges, "log")
    if kind == "linear":
        half = (values[1] - values[0]) / 2
        edges = [values[0] - half, *(v + half for v in values)]
        if len(values) > MAX_TICKS:
            return AxisLayout(axis.field, edges)
        labels = [coord_text(v) for v in values]
        return AxisLayout(axis.field, edges, ticks=list(values), tick_labels=labels)
    edges = [i - 0.5 for i in range(len(values) + 1)]
    labels = [coord_text(v) for v in values]
    return AxisLayout(axis.field, edges, ticks=list(range(len(values))), tick_labels=labels)


# --- the phase diagram ---------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One diagram: the points whose other diagram axes hold the values in `fixed`."""

    fixed: dict[str, Any]
    cells: list[analysis.DiagramCell]

    @property
    def title(self) -> str:
        return ", ".join(f"{field} = {coord_text(value)}" for field, value in self.fixed.items())


def panels(record: SweepRecord, cells: list[analysis.DiagramCell]) -> list[Panel]:
    """One panel per combination of the values of the diagram axes past the first two."""
    others = record.diagram_axes[2:]
    found = []
    for combo in itertools.product(*(range(len(axis.values)) for axis in others)):
        fixed = {axis.field: axis.values[i] for axis, i in zip(others, combo, strict=True)}
        found.append(Panel(fixed, [cell for cell in cells if cell.index[2:] == combo]))
    return found


def _place(cell: analysis.DiagramCell, x: AxisLayout, y: AxisLayout) -> tuple:
    ix = cell.index[0] if cell.index else 0
    iy = cell.index[1] if len(cell.index) > 1 else 0
    (x0, x1), (y0, y1) = x.span(ix), y.span(iy)
    return (x0, y0), x1 - x0, y1 - y0


def _centre(corner: tuple, width: float, height: float, x: AxisLayout, y: AxisLayout) -> tuple:
    def mid(start: float, size: float, scale: str) -> float:
        return math.sqrt(start * (start + size)) if scale == "log" else start + size / 2

    return mid(corner[0], width, x.scale), mid(corner[1], height, y.scale)


def _frame(ax, x: AxisLayout, y: AxisLayout, title: str) -> None:
    for layout_, set_scale, set_lim, set_ticks, set_label in (
        (x, ax.set_xscale, ax.set_xlim, ax.set_xticks, ax.set_xlabel),
        (y, ax.set_yscale, ax.set_ylim, ax.set_yticks, ax.set_ylabel),
    ):
        set_scale(layout_.scale)
        set_lim(layout_.edges[0], layout_.edges[-1])
        if layout_.ticks is not None:
            set_ticks(layout_.ticks, layout_.tick_labels)
        set_label(layout_.label)
    if title:
        ax.set_title(title, fontsize=9)


def _pending(ax, patches, cell, corner, width, height) -> None:
    """A point with nothing to colour: hatched if a seed is yet to run, else blank."""
    hatch = "//" if cell.waiting else None
    face = "white" if cell.waiting or cell.outcome is None else "0.85"
    ax.add_patch(
        patches.Rectangle(corner, width, height, facecolor=face, hatch=hatch, edgecolor="0.6")
    )


def draw_outcomes(ax, panel: Panel, x: AxisLayout, y: AxisLayout) -> None:
    from matplotlib import patches

    for cell in panel.cells:
        corner, width, height = _place(cell, x, y)
        outcome = cell.outcome
        if outcome is None:
            _pending(ax, patches, cell, corner, width, height)
            continue
        ax.add_patch(
            patches.Rectangle(corner, width, height, facecolor=rgb(outcome), edgecolor="white")
        )
        if cell.disagree:
            agree, decided = cell.agreement
            colour = "white" if outcome in DARK_OUTCOMES else "black"
            centre = _centre(corner, width, height, x, y)
            ax.text(*centre, f"{agree}/{decided}", ha="center", va="center", fontsize=8,
                    color=colour, fontweight="bold")  # fmt: skip


def draw_numbers(ax, panel: Panel, x: AxisLayout, y: AxisLayout, colours, norm) -> None:
    from matplotlib import patches

    for cell in panel.cells:
        corner, width, height = _place(cell, x, y)
        value = cell.number(NUMBER)
        if value is None:
            hatch = "//" if cell.waiting else None
            ax.add_patch(patches.Rectangle(corner, width, height, facecolor="white",
                                           hatch=hatch, edgecolor="0.8"))  # fmt: skip
            continue
        face = colours(norm(value))
        ax.add_patch(patches.Rectangle(corner, width, height, facecolor=face, edgecolor="white"))
        have, seeds = cell.count(NUMBER)
        if have < seeds:
            dark = sum(face[:3]) < 1.5
            ax.text(*_centre(corner, width, height, x, y), f"{have}/{seeds}", ha="center",
                    va="center", fontsize=8, color="white" if dark else "black")  # fmt: skip


def _figure(count: int):
    plt = pyplot()
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns + 1.6, 3.8 * rows), dpi=110,
                             squeeze=False)  # fmt: skip
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return plt, fig, list(axes.flat[:count])


def save_outcome_diagram(path: Path, record: SweepRecord, shown: list[Panel]) -> None:
    from matplotlib import patches

    x, y = _layouts(record)
    plt, fig, axes = _figure(len(shown))
    try:
        for ax, panel in zip(axes, shown, strict=True):
            draw_outcomes(ax, panel, x, y)
            _frame(ax, x, y, panel.title)
        legend = [patches.Patch(facecolor=rgb(o), label=o) for o in OUTCOME_RGB]
        legend += [
            patches.Patch(facecolor="white", hatch="//", edgecolor="0.6", label="not run yet"),
            patches.Patch(facecolor="0.85", edgecolor="0.6", label="ended without an outcome"),
        ]
        if record.diagram_axes != record.axes:
            legend.append(patches.Patch(color="none", label="k/n: k of n seeds give the colour"))
        fig.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8)
        fig.suptitle(f"{record.id} {record.name}: outcome", x=0.02, ha="left", fontsize=10)
        fig.tight_layout()
        save_figure(fig, path, bbox_inches="tight")
    finally:
        plt.close(fig)


def save_number_diagram(path: Path, record: SweepRecord, shown: list[Panel]) -> bool:
    """The diagram coloured by t4 (the mean over the seeds that reached it), with a colour
    bar; False (no file) when no point has reached t4."""
    values = [
        v for panel in shown for cell in panel.cells if (v := cell.number(NUMBER)) is not None
    ]
    if not values:
        return False
    from matplotlib import cm, colors

    low, high = min(values), max(values)
    if low == high:
        low, high = low - 0.5, high + 0.5
    spread = low > 0 and high / low >= 10
    norm = colors.LogNorm(low, high) if spread else colors.Normalize(low, high)
    colours = pyplot().get_cmap("plasma")
    x, y = _layouts(record)
    plt, fig, axes = _figure(len(shown))
    try:
        for ax, panel in zip(axes, shown, strict=True):
            draw_numbers(ax, panel, x, y, colours, norm)
            _frame(ax, x, y, panel.title)
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=colours), ax=axes, shrink=0.9)
        bar.set_label(f"{NUMBER} (steps; mean over seeds)")
        title = f"{record.id} {record.name}: {NUMBER}; blank: never reached, hatched: not run yet"
        fig.suptitle(title, x=0.02, ha="left", fontsize=10)
        save_figure(fig, path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return True


def _layouts(record: SweepRecord) -> tuple[AxisLayout, AxisLayout]:
    axes = record.diagram_axes
    return layout(axes[0] if axes else None), layout(axes[1] if len(axes) > 1 else None)


# --- what the sweep tells: the scatter plots -----------------------------------------------


def _outcome_scatter(ax, points: list[tuple[float, float, str | None]]) -> None:
    for outcome in [*OUTCOME_RGB, None]:
        chosen = [(px, py) for px, py, o in points if o == outcome]
        if chosen:
            colour = rgb(outcome) if outcome else "white"
            ax.scatter(*zip(*chosen, strict=True), color=colour, edgecolor="black", s=36,
                       label=outcome or "no outcome yet", zorder=3)  # fmt: skip


def save_forecast_plot(path: Path, rows: list[dict[str, Any]]) -> bool:
    points = [
        (row["m0"], row["test_acc"], row["outcome"])
        for row in rows
        if row["status"] == "finished" and row["m0"] is not None and row["test_acc"] is not None
    ]
    if not points:
        return False
    with chart(path, "m₀ of the early loss against final test accuracy (finished cells)") as ax:
        _outcome_scatter(ax, points)
        thresholds = {row["generalized"] for row in rows}
        if len(thresholds) == 1:
            level = thresholds.pop()
            ax.axhline(level, color="grey", lw=0.8, ls="--", label=f"generalized: ≥ {level:g}")
        if min(m0 for m0, _, _ in points) > 0:
            ax.set_xscale("log")
        ax.set_xlabel("m₀ = Var(loss) over the first steps")
        ax.set_ylabel("final test acc")
    return True


def save_power_law_plot(path: Path, law: analysis.PowerLaw, rows: list[dict[str, Any]]) -> bool:
    """t4 against the axis, log-log, with the fit; False (no file) unless the cells that
    reached t4 lie at two values of it or more."""
    points = [p for p in analysis.t4_points(rows, law.field) if p[0] > 0 and p[1] > 0]
    if len({x for x, _, _ in points}) < 2:
        return False
    with chart(path, f"t4 against {law.field} (log-log)") as ax:
        _outcome_scatter(ax, points)
        if law.gamma is not None:
            xs = [x for x, _, _ in points]
            ends = [min(xs), max(xs)]
            label = f"fit: γ = {law.gamma:.3g} ± {law.stderr:.2g}"
            ax.plot(ends, [law.predict(x) for x in ends], color="black", lw=1.0, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(law.field)
        ax.set_ylabel("t4 (steps)")
    return True


# --- markdown ------------------------------------------------------------------------------


def definition_table(sweep: control.SweepView) -> str:
    record = sweep.record
    base = record.base + (f" (preset {record.preset})" if record.preset else "")
    rows = [
        ["base", base],
        ["set in every cell", ", ".join(record.overrides) or None],
        ["grid", axes_text(sweep)],
    ]
    for axis in record.axes:
        label = f"{axis.field} (seeds)" if axis.replicate else axis.field
        rows.append([label, ", ".join(coord_text(v) for v in axis.values)])
    rows += [
        ["cells", len(record.cells)],
        ["parallel", record.parallel],
        ["state", f"{sweep.state} ({sweep.progress() or 'no cells'})"],
        ["created", record.created],
    ]
    return table(["", escape_markdown(record.id)], rows)


def diagram_intro(record: SweepRecord, shown: int, total: int) -> str:
    axes = record.diagram_axes
    where = f"x: {axes[0].field}" if axes else "one point (seeds only)"
    if len(axes) > 1:
        where += f", y: {axes[1].field}"
    text = (
        f"{where}. Outcome colours as Liu et al. 2022: comprehension green, grokking yellow, "
        "memorization purple, confusion near-black; hatched: a seed is still to run; grey: "
        "ended without an outcome."
    )
    if record.diagram_axes != record.axes:
        text += (
            " Each point shows its seeds' majority outcome; k/n marks a point whose seeds "
            "disagree (k of the n seeds with an outcome give its colour)."
        )
    if len(axes) > 2:
        others = ", ".join(axis.field for axis in axes[2:])
        text += f" One diagram per value of {others}"
        text += f" (the first {shown} of {total})." if shown < total else "."
    return escape_markdown(text)


def cells_table(record: SweepRecord, rows: list[dict[str, Any]]) -> str:
    fields = [axis.field for axis in record.axes]
    header = ["run", *fields, *(label for _, label in CELL_COLUMNS)]
    body = [
        [row["run"], *(coord_text(row[f]) for f in fields), *(row[key] for key, _ in CELL_COLUMNS)]
        for row in rows
    ]
    return table([escape_markdown(h) for h in header], body)


def notes_part(lab: Lab, record: SweepRecord) -> list[str]:
    lines = []
    for run_id in record.cells:
        for note in lab.notes(run_id):
            where = f"step {note['step']}" if note.get("step") is not None else "run"
            text = escape_markdown(note["text"])
            lines.append(f"- **{escape_markdown(run_id)}**, {where} ({note['time']}): {text}")
    return lines or ["No notes on the cells."]


# --- writing -------------------------------------------------------------------------------


def export_sweep(lab: Lab, sweep_id: str, path: Path) -> Path:
    """Write the sweep's Markdown page at path (.md) and its PNGs; returns path."""
    return export_sweep_files(lab, sweep_id, path)[0]


def export_sweep_files(lab: Lab, sweep_id: str, target: Path) -> list[Path]:
    """Write the page and its PNGs; returns the files written, the Markdown first."""
    record = lab.get_sweep(lab.resolve_sweep(sweep_id))
    check_target(target)
    live.record_ended_runs(lab)  # a killed cell reads crashed, not running
    sweep = control.view(lab, record)
    try:
        return _write(lab, sweep, analysis.cell_rows(lab, sweep), target)
    except OSError as exc:  # a full disk, a read-only folder: the Markdown is not written
        raise LabError(f"cannot write the export {target}: {exc.strerror or exc}") from None


def _write(
    lab: Lab, sweep: control.SweepView, rows: list[dict[str, Any]], target: Path
) -> list[Path]:
    record = sweep.record
    folder = files_folder(target)
    folder.mkdir(exist_ok=True)
    cells = analysis.diagram_cells(record, rows)
    every = panels(record, cells)
    shown = every[:MAX_PANELS]
    images: dict[str, Path] = {}
    outcome_png = folder / "phase-outcome.png"
    save_outcome_diagram(outcome_png, record, shown)
    images["phase diagram: outcome"] = outcome_png
    number_png = folder / f"phase-{NUMBER}.png"
    if save_number_diagram(number_png, record, shown):
        images[f"phase diagram: {NUMBER}"] = number_png

    told = analysis.analyse_rows(record, rows)
    plots: dict[str, Path] = {}
    forecast_png = folder / "m0-vs-test-acc.png"
    if save_forecast_plot(forecast_png, rows):
        plots["m₀ against final test accuracy"] = forecast_png
    for law in told.power_laws:
        png = folder / f"t4-vs-{law.field}.png"
        if save_power_law_plot(png, law, rows):
            plots[f"t4 against {law.field}"] = png

    now = datetime.now(UTC).isoformat(timespec="seconds")
    title = escape_markdown(f"{record.id}: {record.name}")
    parts = [f"# grokterm sweep {title}", "", f"_Exported {now} from `{lab.root}`._", ""]
    parts += [definition_table(sweep), ""]
    parts += ["## Phase diagram", "", diagram_intro(record, len(shown), len(every)), ""]
    if f"phase diagram: {NUMBER}" not in images:
        parts += [f"No cell has reached {NUMBER} yet: no {NUMBER} diagram.", ""]
    parts += [f"![{escape_markdown(alt)}]({link(p, target)})\n" for alt, p in images.items()]
    parts += ["## What the sweep tells", ""]
    parts += [f"- {escape_markdown(line)}" for line in told.lines()]
    parts += [
        "",
        "Seeds count as separate cells; each t4 fit is pooled over the other axes. "
        "m₀ is Hjorth's activity of the raw training loss over the first steps "
        "(`probes.forecast_steps`); generalized: final test acc ≥ the run's "
        "`detector.generalized`.",
        "",
    ]
    parts += [f"![{escape_markdown(alt)}]({link(p, target)})\n" for alt, p in plots.items()]
    parts += ["## Cells", "", cells_table(record, rows), ""]
    parts += ["## Notes", "", *notes_part(lab, record), ""]
    write_bytes_atomic(target, "\n".join(parts).encode("utf-8"))
    return [target, *images.values(), *plots.values()]
