"""Sweeps: the lab's sweeps in a table, and one sweep as its live phase diagram.

Both read the shared snapshot (its sweeps and their cells' live views), never the lab."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Header, Static

from grokterm.lab.records import RunView
from grokterm.sweep import diagram as grid
from grokterm.sweep.control import SweepView
from grokterm.sweep.report import axes_text, coord_text
from grokterm.tui import bindings, messages
from grokterm.tui.screens.base import GrokFooter, GrokScreen, selected_key, sync_rows
from grokterm.tui.screens.dialogs import MetricPicker
from grokterm.tui.screens.runs import STATUS_STYLE, preview_text
from grokterm.tui.state import LabChange, LabState
from grokterm.tui.widgets import NARROW_BELOW
from grokterm.tui.widgets.phase_diagram import PhaseDiagram
from grokterm.views import fmt

SWEEP_COLUMNS = ("id", "name", "base", "grid", "cells", "state", "progress", "outcomes")
VIEWS = (grid.OUTCOME_VIEW, *grid.NUMERIC_VIEWS)
NO_SWEEPS = "No sweeps yet: start one with  grokterm sweep PRESET --grid FIELD=VALUES ..."


def outcome_counts(sweep: SweepView) -> str:
    """Each run's outcome so far, counted by letter: `3C 5G 2M`."""
    counts = {letter: 0 for letter in grid.OUTCOME_LETTER.values()}
    for run in sweep.cells:
        if grid.decided(run):
            counts[grid.OUTCOME_LETTER[grid.Outcome(run.summary["phase"])]] += 1
    return " ".join(f"{n}{letter}" for letter, n in counts.items() if n) or "–"


def sweep_cells(sweep: SweepView) -> list[str]:
    record = sweep.record
    return [
        record.id,
        record.name,
        record.base,
        axes_text(sweep),
        str(len(record.cells)),
        sweep.state,
        sweep.progress(),
        outcome_counts(sweep),
    ]


class SweepsScreen(GrokScreen):
    """Sweeps: every sweep in the lab, live"""

    BINDINGS = [
        Binding("enter", "open_sweep", "Phase diagram", id="open-sweep"),
        bindings.EXPORT,
        bindings.BACK,
        bindings.HELP,
        bindings.QUIT,
    ]

    def __init__(self, state: LabState):
        super().__init__(state)
        self._shown: dict[str, list] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sweeps", cursor_type="row", zebra_stripes=True)
        yield Static("", id="sweeps-status")
        yield GrokFooter()

    def on_mount(self) -> None:
        self.title = "Sweeps"
        self.sub_title = str(self.state.lab.root)
        table = self.query_one("#sweeps", DataTable)
        for column in SWEEP_COLUMNS:
            table.add_column(column, key=column)
        table.focus()
        super().on_mount()

    def show_lab(self, change: LabChange) -> None:
        if not (change.sweeps or change.log):
            return
        sweeps = self.state.snapshot.sweeps.values()
        rows = [(sweep.record.id, sweep_cells(sweep)) for sweep in sweeps]
        sync_rows(self.query_one("#sweeps", DataTable), rows, self._shown)
        status = f"{len(rows)} sweep(s) · enter opens its phase diagram" if rows else NO_SWEEPS
        self.query_one("#sweeps-status", Static).update(status)

    def show_problem(self, message: str) -> None:
        self.query_one("#sweeps-status", Static).update(Text(message, style="bold red"))

    def selected_id(self) -> str | None:
        return selected_key(self.query_one("#sweeps", DataTable))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open_sweep()

    def action_open_sweep(self) -> None:
        sweep_id = self.selected_id()
        if sweep_id:
            self.post_message(messages.OpenSweep(sweep_id))

    def action_export(self) -> None:
        sweep_id = self.selected_id()
        if sweep_id:
            self.post_message(messages.ExportSweep(sweep_id))


class SweepScreen(GrokScreen):
    """Sweep: its phase diagram, live; the cell under the cursor beside it"""

    BINDINGS = [
        Binding("enter", "open_run", "Monitor", id="open-run"),
        bindings.MARK,
        Binding("c", "compare", "Compare marked", id="compare"),
        Binding("v", "next_view", "Outcome/number", id="next-view"),
        Binding("M", "pick_metric", "Colour by metric", id="pick-metric"),
        Binding("x", "swap_axes", "Swap axes", id="swap-axes"),
        Binding("p", "next_axes", "Other axes", id="next-axes"),
        Binding("right_square_bracket", "slice(1)", "Next slice", key_display="]", id="next-slice"),
        Binding("left_square_bracket", "slice(-1)", "Previous slice", show=False, id="prev-slice"),
        bindings.EXPORT,
        bindings.BACK,
        bindings.HELP,
        bindings.QUIT,
    ]

    def __init__(self, state: LabState, sweep_id: str):
        super().__init__(state)
        self.sweep_id = sweep_id
        self.view = grid.OUTCOME_VIEW
        self.pair_index = 0
        self.swapped = False
        self.slice_index = 0
        self.marked: set[str] = set()
        self.sweep: SweepView | None = None
        self.diagram: grid.Diagram | None = None
        self._side: Text | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="sweep-status")
        with Horizontal(id="sweep-body"):
            yield PhaseDiagram(id="diagram")
            with VerticalScroll(id="sweep-side"):
                yield Static("", id="sweep-side-text")
        yield GrokFooter()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")

    def on_mount(self) -> None:
        self.title = self.sweep_id
        self.query_one(PhaseDiagram).focus()
        super().on_mount()

    # --- data ------------------------------------------------------------------------------

    def show_lab(self, change: LabChange) -> None:
        if self.sweep_id in change.sweeps or change.log:
            self.redraw()

    def show_problem(self, message: str) -> None:
        self.query_one("#sweep-status", Static).update(Text(message, style="bold red"))

    def redraw(self) -> None:
        self.sweep = self.state.snapshot.sweeps.get(self.sweep_id)
        if self.sweep is None:
            loaded = self.state.snapshot.loaded
            status = f"{self.sweep_id} is not in the lab" if loaded else "Reading the lab…"
            self.query_one("#sweep-status", Static).update(status)
            return
        x, y = self.shown_axes()
        slices = grid.slices(self.sweep.record, [x, y])
        self.slice_index %= len(slices)
        self.diagram = grid.build(self.sweep, x, y, slices[self.slice_index])
        self.query_one(PhaseDiagram).show(self.diagram, self.view, self.marked)
        self.update_status(len(slices))
        self.update_side()

    def shown_axes(self) -> tuple[str, str | None]:
        pairs = grid.axis_pairs(self.sweep.record)
        x, y = pairs[self.pair_index % len(pairs)]
        return (y, x) if self.swapped and y else (x, y)

    def update_status(self, slice_count: int) -> None:
        sweep = self.sweep
        parts = [sweep.record.name, f"{sweep.state}: {sweep.progress()}"]
        if self.diagram.fixed:
            held = ", ".join(f"{f}={coord_text(v)}" for f, v in self.diagram.fixed.items())
            parts.append(f"slice {held} ({self.slice_index + 1}/{slice_count}, [ ])")
        if self.marked:
            parts.append(f"{len(self.marked)} run(s) marked")
        self.query_one("#sweep-status", Static).update(" · ".join(parts))

    def point(self) -> grid.Point | None:
        if self.diagram is None:
            return None
        return self.diagram.point(*self.query_one(PhaseDiagram).cursor)

    def update_side(self) -> None:
        text = side_text(self.diagram, self.query_one(PhaseDiagram).cursor, self.state)
        if text != self._side:
            self._side = text
            self.query_one("#sweep-side-text", Static).update(text)

    @on(PhaseDiagram.CursorMoved)
    def _cursor_moved(self) -> None:
        self.update_side()

    # --- actions -----------------------------------------------------------------------------

    def action_open_run(self) -> None:
        point = self.point()
        if point is not None:
            self.post_message(messages.OpenMonitor(point.runs[0].id))

    def action_toggle_mark(self) -> None:
        point = self.point()
        if point is None:
            return
        ids = set(point.ids)
        self.marked = self.marked - ids if ids <= self.marked else self.marked | ids
        self.redraw()

    def action_compare(self) -> None:
        """The marked points' runs; with none marked, the seeds of the point at the cursor."""
        point = self.point()
        chosen = self.marked or (set(point.ids) if point else set())
        run_ids = [run_id for run_id in self.sweep.record.cells if run_id in chosen]
        if len(run_ids) < 2:
            self.notify("Mark two or more cells with space to compare them", severity="warning")
            return
        self.post_message(messages.OpenCompare(run_ids))

    def action_export(self) -> None:
        self.post_message(messages.ExportSweep(self.sweep_id))

    def action_next_view(self) -> None:
        index = VIEWS.index(self.view) + 1 if self.view in VIEWS else 0
        self.view = VIEWS[index % len(VIEWS)]
        self.redraw()

    def action_pick_metric(self) -> None:
        if self.sweep is None:
            return

        def picked(name: str | None) -> None:
            if name:
                self.view = name
                self.redraw()

        keys = grid.numeric_keys(self.sweep.cells)
        self.app.push_screen(MetricPicker(keys, "Colour the diagram by which metric?"), picked)

    def action_swap_axes(self) -> None:
        if self.sweep is not None and self.shown_axes()[1] is not None:
            self.swapped = not self.swapped
            self.swap_cursor()
            self.redraw()

    def swap_cursor(self) -> None:
        diagram = self.query_one(PhaseDiagram)
        diagram.cursor = diagram.cursor[::-1]

    def action_next_axes(self) -> None:
        if self.sweep is None or len(grid.axis_pairs(self.sweep.record)) < 2:
            self.notify("This sweep has no other axes to show", severity="warning")
            return
        self.pair_index += 1
        self.slice_index = 0
        self.redraw()

    def action_slice(self, step: int) -> None:
        if self.diagram is None or not self.diagram.fixed:
            self.notify("Every axis is shown: there is no other slice", severity="warning")
            return
        self.slice_index += step
        self.redraw()


def side_text(diagram: grid.Diagram | None, cursor: tuple[int, int], state: LabState) -> Text:
    """The point under the cursor: where it is, its seeds' outcomes, its first run's
    events and notes."""
    point = diagram.point(*cursor) if diagram else None
    if diagram is None or point is None:
        return Text("No run at this point.", style="dim")
    text = Text()
    x, y = cursor
    text.append(f"{diagram.x_axis.field} = {coord_text(diagram.x_axis.values[x])}\n", "bold")
    if diagram.y_axis:
        text.append(f"{diagram.y_axis.field} = {coord_text(diagram.y_axis.values[y])}\n", "bold")
    for field, value in diagram.fixed.items():
        text.append(f"{field} = {coord_text(value)}\n")
    if len(point.runs) > 1:
        outcome = point.outcome.value if point.outcome else "none yet"
        text.append(f"{len(point.runs)} seeds · {outcome} ")
        text.append(f"({point.agreeing} of {point.decided} decided)")
        tie = point.disagrees and 2 * point.agreeing <= point.decided
        text.append(", a tie: the lowest seed's\n" if tie else "\n")
        if point.disagrees:
            found = ", ".join(f"{n} {o.value}" for o, n in point.outcomes.items())
            text.append(f"seeds disagree: {found}\n", style="bold")
    for run in point.runs:
        text.append_text(run_line(run))
    text.append("\n")
    first = point.runs[0]
    snapshot = state.snapshot
    text.append_text(preview_text(first, snapshot.events_of(first.id), snapshot.notes_of(first.id)))
    return text


def run_line(run: RunView) -> Text:
    """One run of a point: seed, id, status, outcome, t2, t4 and test accuracy."""
    summary = run.summary
    seed = (run.coords or {}).get("seed")
    line = Text(f"seed {seed}: " if seed is not None else "")
    line.append(f"{run.id} ")
    line.append(str(run.status), style=STATUS_STYLE.get(run.status, ""))
    line.append(f" {summary.get('phase') or '–'}\n", style="bold")
    line.append(f"  t2 {fmt(summary.get('t2'))} · t4 {fmt(summary.get('t4'))}")
    line.append(f" · test {fmt(run.metric('test_acc'))}\n")
    return line
