"""The home screen: every run in the lab, live, with a preview of its events and notes."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Header, Input, Static

from grokterm.lab.records import Event, RunStatus, RunView
from grokterm.tui import bindings, messages
from grokterm.tui.config_columns import ConfigColumns, RunFilter
from grokterm.tui.screens.base import GrokFooter, GrokScreen, selected_key, sync_rows
from grokterm.tui.state import LabChange, LabState
from grokterm.tui.widgets import NARROW_BELOW

COLUMNS = [
    ("mark", " "),
    ("id", "run"),
    ("preset", "preset"),
    ("status", "status"),
    ("step", "step"),
    ("train", "train"),
    ("test", "test"),
    ("outcome", "outcome"),
    ("t2", "t2"),
    ("t4", "t4"),
    ("tags", "tags"),
    ("started", "started"),
]
SORTABLE = [key for key, _ in COLUMNS if key != "mark"]
# The config fields that differ across the runs follow the fixed columns, up to these many:
# at 80 columns the run id (kept in view) and three of them fit in one sideways scroll.
CONFIG_COLUMNS_NARROW = 3
CONFIG_COLUMNS_WIDE = 6
STATUS_STYLE = {
    RunStatus.RUNNING: "bold green",
    RunStatus.QUEUED: "yellow",
    RunStatus.FINISHED: "cyan",
    RunStatus.STOPPED: "magenta",
    RunStatus.CRASHED: "bold red",
    RunStatus.DIVERGED: "bold red",
}


def row_values(view: RunView) -> dict[str, Any]:
    """Sortable raw values of one run's row."""
    summary = view.summary
    return {
        "id": view.id,
        "preset": view.preset or "",
        "status": view.status.value,
        "step": view.step,
        "train": view.metric("train_acc"),
        "test": view.metric("test_acc"),
        "outcome": summary.get("phase") or "",
        "t2": summary.get("t2"),
        "t4": summary.get("t4"),
        "tags": ",".join(view.tags),
        "started": view.started or view.created or "",
    }


def cell(key: str, value: Any, view: RunView) -> Any:
    if value is None:
        return "–"
    if key in ("train", "test"):
        return f"{value:.3f}"
    if key == "started":
        return value[5:16].replace("T", " ")  # the stored time is UTC, like the lab log's
    if key == "status":
        return Text(value, style=STATUS_STYLE.get(value, ""))
    if key == "step":
        total = view.total
        return f"{value}/{total}" if total else str(value)
    return str(value)


def sort_key(value: Any) -> tuple:
    """Empty values apart; numbers, lists of numbers ([128, 128]) and text never compared
    with one another (a config column may hold each)."""
    if value is None or value == "":
        return (True, 0, 0)
    if isinstance(value, int | float):
        return (False, 0, value)
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return (False, 1, tuple(value))
    return (False, 2, str(value))


class RunsScreen(GrokScreen):
    """Runs: every run in the lab"""

    BINDINGS = [
        Binding("n", "new_run", "New run", id="new-run"),
        Binding("N", "clone_run", "Clone run", id="clone-run"),
        Binding("enter", "open_run", "Open", id="open-run"),
        bindings.MARK,
        Binding("c", "compare", "Compare marked", id="compare"),
        bindings.EXPORT,
        Binding("a", "add_note", "Note", id="add-note"),
        bindings.STOP,
        bindings.RESUME,
        Binding("o", "sort_next", "Sort by next column", show=False, id="sort-next"),
        Binding("O", "sort_reverse", "Reverse sort", show=False, id="sort-reverse"),
        bindings.FILTER,
        Binding("L", "lab_log", "Lab log", id="lab-log"),
        Binding("W", "sweeps", "Sweeps", id="sweeps"),
        bindings.HELP,
        bindings.QUIT,
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear-filter"),
    ]

    def __init__(self, state: LabState):
        super().__init__(state)
        self.views: list[RunView] = []
        self.marked: set[str] = set()
        self.filter_text = ""
        self.run_filter = RunFilter()
        self.config = ConfigColumns()
        self.config_shown: list[str] = []  # the config columns in the table
        self.sort_column = "started"
        self.sort_reverse = True
        self._preview: Text | None = None
        self._shown: dict[str, list] = {}  # run id -> the cells on screen
        self.problem: str | None = None
        self._status: str | None = None  # the status line as shown

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="filter runs: words of id, preset, status, outcome, tags; "
            "field=value (weight_decay=0, status=running)",
            id="filter",
        )
        with Horizontal(id="runs-body"):
            # the mark and the run id stay in view while the table scrolls sideways
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True, fixed_columns=2)
            with Vertical(id="preview"):
                yield Static("", id="preview-text")
        yield Static("", id="runs-status")
        yield GrokFooter()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")
        if self.show_config_columns():
            self.show_runs()

    def on_mount(self) -> None:
        self.title = "grokterm"
        self.sub_title = str(self.state.lab.root)
        table = self.query_one("#runs", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#filter", Input).display = False
        table.focus()
        super().on_mount()

    # --- data ------------------------------------------------------------------------------

    def show_lab(self, change: LabChange) -> None:
        self.problem = None
        self.views = list(self.state.snapshot.views.values())
        if self.config.update(self.views):  # the set of runs changed
            self.show_config_columns()
        self.show_runs()

    def show_config_columns(self) -> bool:
        """Make the table's config columns the first differing fields that fit the width;
        True when they changed (the rows are then rebuilt, the cursor kept on its run)."""
        cap = CONFIG_COLUMNS_NARROW if self.size.width < NARROW_BELOW else CONFIG_COLUMNS_WIDE
        shown = self.config.fields[:cap]
        if shown == self.config_shown:
            return False
        table = self.query_one("#runs", DataTable)
        for field in self.config_shown:
            table.remove_column(field)
        for field in shown:
            table.add_column(Text(self.config.headers[field], style="italic"), key=field)
        self.config_shown = shown
        self._shown.clear()
        if self.sort_column not in self.sortable():
            self.sort_column, self.sort_reverse = "started", True
        return True

    def sortable(self) -> list[str]:
        return SORTABLE + self.config_shown

    def show_problem(self, message: str) -> None:
        """The lab cannot be read: say so where the run count goes."""
        self.problem = message
        self._status = None
        self.query_one("#runs-status", Static).update(Text(message, style="bold red"))

    def show_runs(self) -> None:
        rows = [(view, row_values(view)) for view in self.views]
        if self.run_filter:
            matches, config = self.run_filter.matches, self.config
            rows = [(view, values) for view, values in rows if matches(view.id, values, config)]
        rows.sort(key=lambda row: sort_key(self.sort_value(*row)), reverse=self.sort_reverse)
        table = self.query_one("#runs", DataTable)
        sync_rows(
            table,
            [(view.id, self.row_cells(view, values)) for view, values in rows],
            self._shown,
        )
        self.update_status(len(rows))
        self.update_preview()

    def sort_value(self, view: RunView, values: dict[str, Any]) -> Any:
        column = self.sort_column
        return values[column] if column in values else self.config.value(view.id, column)

    def row_cells(self, view: RunView, values: dict[str, Any]) -> list[Any]:
        fixed = [cell(key, values[key], view) for key in SORTABLE]
        return [self.mark_of(view.id), *fixed, *self.config.cells(view.id, self.config_shown)]

    def mark_of(self, run_id: str) -> str:
        return "●" if run_id in self.marked else " "

    def update_status(self, shown: int) -> None:
        if self.problem:
            return
        arrow = "↓" if self.sort_reverse else "↑"
        status = f"{shown} of {len(self.views)} runs · sorted by {self.sort_column} {arrow}"
        if self.marked:
            status += f" · {len(self.marked)} marked"
        if self.filter_text:
            status += f" · filter: {self.filter_text}"
            unknown = self.run_filter.unknown(SORTABLE, self.config)
            if unknown:
                status += f" (no field {', '.join(unknown)})"
        status += config_note(len(self.config_shown), len(self.config.fields))
        if not self.views:
            status = "No runs yet: press n to launch one."
        if status != self._status:
            self._status = status
            self.query_one("#runs-status", Static).update(status)

    def selected_id(self) -> str | None:
        return selected_key(self.query_one("#runs", DataTable))

    def selected_view(self) -> RunView | None:
        run_id = self.selected_id()
        return next((view for view in self.views if view.id == run_id), None)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.update_preview()

    def update_preview(self) -> None:
        view = self.selected_view()
        if view is None:
            text = Text("Select a run to see its events and notes.")
        else:
            snapshot = self.state.snapshot
            text = preview_text(view, snapshot.events_of(view.id), snapshot.notes_of(view.id))
        if text != self._preview:
            self._preview = text
            self.query_one("#preview-text", Static).update(text)

    # --- actions -----------------------------------------------------------------------------

    def action_new_run(self) -> None:
        self.post_message(messages.OpenLaunch())

    def action_clone_run(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.post_message(messages.OpenLaunch(run_id=run_id))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.post_message(messages.OpenMonitor(run_id))

    def action_toggle_mark(self) -> None:
        """Only the row's mark cell changes: a key must not wait for every row to be redone."""
        run_id = self.selected_id()
        if run_id:
            self.marked ^= {run_id}
            mark = self.mark_of(run_id)
            self._shown[run_id][0] = mark
            self.query_one("#runs", DataTable).update_cell(run_id, "mark", mark)
            self.update_status(len(self._shown))

    def marked_or_selected(self) -> list[str]:
        order = [view.id for view in self.views]
        if self.marked:
            return [run_id for run_id in order if run_id in self.marked]
        selected = self.selected_id()
        return [selected] if selected else []

    def action_compare(self) -> None:
        run_ids = [run_id for run_id in (view.id for view in self.views) if run_id in self.marked]
        if len(run_ids) < 2:
            self.notify("Mark two or more runs with space to compare them", severity="warning")
            return
        self.post_message(messages.OpenCompare(run_ids))

    def action_export(self) -> None:
        run_ids = self.marked_or_selected()
        if run_ids:
            self.post_message(messages.ExportRuns(run_ids))

    def action_add_note(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.post_message(messages.AddNote(run_id))

    def action_stop_run(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.post_message(messages.StopRun(run_id))

    def action_resume_run(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.post_message(messages.ResumeRun(run_id))

    def action_sort_next(self) -> None:
        columns = self.sortable()
        self.sort_column = columns[(columns.index(self.sort_column) + 1) % len(columns)]
        self.show_runs()

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.show_runs()

    @on(DataTable.HeaderSelected)
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in self.sortable():
            if key == self.sort_column:
                self.sort_reverse = not self.sort_reverse
            self.sort_column = key
            self.show_runs()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.run_filter = RunFilter()
        self.query_one("#runs", DataTable).focus()
        self.show_runs()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.run_filter = RunFilter.parse(self.filter_text)
        self.show_runs()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(self.filter_text)
        self.query_one("#runs", DataTable).focus()

    def action_lab_log(self) -> None:
        self.post_message(messages.OpenLabLog())

    def action_sweeps(self) -> None:
        self.post_message(messages.OpenSweeps())


def config_note(shown: int, differing: int) -> str:
    """Where the config columns are, for a table whose fixed columns may fill its width."""
    if not differing:
        return ""
    if shown == differing:
        return f" · {differing} differing config field(s) →"
    return f" · {shown}/{differing} differing config fields →"


def preview_text(view: RunView, events: list[Event], notes: list[dict]) -> Text:
    text = Text()
    text.append(f"{view.id}\n", style="bold")
    text.append(f"{view.status}", style=STATUS_STYLE.get(view.status, ""))
    text.append(f"  step {view.step}/{view.total}\n")
    if view.reason:
        text.append(f"{view.reason}\n", style="italic")
    text.append("\nevents\n", style="bold underline")
    for event in events:
        text.append(f"{event.step:>8} {event.kind}\n", style="bold")
        text.append(f"  {event.detail}\n")
    if not events:
        text.append("none yet\n", style="dim")
    text.append("\nnotes\n", style="bold underline")
    for note in notes:
        where = f"step {note['step']}" if note.get("step") is not None else "run"
        text.append(f"{note['time'][:16].replace('T', ' ')} {where}\n", style="dim")
        text.append(f"  {note['text']}\n")
    if not notes:
        text.append("none (press a to add one)\n", style="dim")
    return text
