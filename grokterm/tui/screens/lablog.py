"""The lab log as one timeline: runs created and ended, notes and detected events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Input, Static

from grokterm.lab.records import Event, RunView
from grokterm.tui import bindings, messages
from grokterm.tui.screens.base import GrokFooter, GrokScreen, selected_key, sync_rows
from grokterm.tui.screens.runs import STATUS_STYLE
from grokterm.tui.state import LabChange, LabState
from grokterm.tui.widgets import NARROW_BELOW

TEXT_SHOWN = 120  # characters of an entry's text in the table; the detail line shows it all
COLUMNS = [
    ("mark", " "),
    ("time", "time (UTC)"),
    ("what", "what"),
    ("run", "run"),
    ("step", "step"),
    ("text", "text"),
]
# Entries at the same second: a run is created before its events, notes follow, it ends last.
RANK = {"created": 0, "event": 1, "note": 2, "ended": 3}
EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    key: str
    time: str  # ISO 8601, as stored
    source: str  # "created", "ended", "event" or "note"
    what: str  # shown: created / a run status / an event kind / note
    run: str | None  # None for a lab-wide note
    step: int | None
    text: str

    def haystack(self) -> str:
        # The time as the table shows it: "2026-12-01 21:05", so "t2" never matches "T21".
        shown_time = (self.time or "")[:19].replace("T", " ")
        fields = (shown_time, self.what, self.run or "lab", self.step, self.text)
        return " ".join("" if f is None else str(f) for f in fields).lower()


def parse_time(value: str | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(value or "")
    except ValueError:
        return EARLIEST
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_entries(view: RunView) -> list[Entry]:
    """A run's 'created' entry, and its 'ended' entry once it has ended."""
    run_id, status = view.id, view.status.value
    source = view.preset or view.name or "a config file"
    total = view.total
    created = f"from {source}" + (f", {total} steps" if total else "")
    if not view.ended:
        created += f"; now {status} at step {view.step}"
        if view.reason:
            created += f" ({view.reason})"
    entries = [
        Entry(
            f"run:{run_id}:created",
            view.created or "",
            "created",
            "created",
            run_id,
            None,
            created,
        )
    ]
    if view.ended:
        summary = view.summary
        parts = [f"outcome {summary.get('phase') or '–'}"]
        train, test = view.metric("train_acc"), view.metric("test_acc")
        if train is not None and test is not None:
            parts.append(f"train {train:.3f} test {test:.3f}")
        marks = [f"{k}={summary[k]}" for k in ("t2", "t4") if summary.get(k) is not None]
        if marks:
            parts.append(" ".join(marks))
        if view.reason:
            parts.append(view.reason)
        ended = Entry(
            f"run:{run_id}:ended",
            view.ended,
            "ended",
            status,
            run_id,
            view.step,
            " · ".join(parts),
        )
        entries.append(ended)
    return entries


def timeline(runs: list[RunView], notes: list[dict[str, Any]], events: list[Event]) -> list[Entry]:
    """Every entry of the lab log, oldest first."""
    entries: list[Entry] = []
    for view in runs:
        entries += run_entries(view)
    created = {view.id: view.created or "" for view in runs}
    seen: dict[tuple, int] = {}
    for event in events:
        ident = (event.run, event.step, event.kind)
        seen[ident] = seen.get(ident, -1) + 1
        key = "event:{}:{}:{}:{}".format(*ident, seen[ident])
        when = event.time or created.get(event.run, "")
        entries.append(Entry(key, when, "event", event.kind, event.run, event.step, event.detail))
    for note in notes:
        key, text = f"note:{note.get('id')}", str(note.get("text") or "")
        entries.append(
            Entry(
                key, note.get("time") or "", "note", "note", note.get("run"), note.get("step"), text
            )
        )
    order = {id(entry): i for i, entry in enumerate(entries)}
    entries.sort(key=lambda e: (parse_time(e.time), RANK[e.source], e.step or 0, order[id(e)]))
    return entries


def row_cells(entry: Entry, marked: bool, compact: bool = False) -> list[Any]:
    if entry.source == "note":
        what = Text("note", style="bold yellow")
    elif entry.source == "event":
        what = Text(entry.what, style="bold cyan")
    else:
        what = Text(entry.what, style=STATUS_STYLE.get(entry.what, ""))
    text = entry.text.replace("\n", " ")
    if len(text) > TEXT_SHOWN:
        text = text[: TEXT_SHOWN - 1] + "…"
    return [
        "●" if marked else " ",
        entry.time[5 if compact else 0 : 19].replace("T", " ") or "–",
        what,
        entry.run or Text("lab", style="italic"),
        "–" if entry.step is None else str(entry.step),
        text,
    ]


class LabLogScreen(GrokScreen):
    """Lab log: runs, notes and events in time order"""

    BINDINGS = [
        bindings.BACK,
        Binding("enter", "open_run", "Open run", id="open-run"),
        bindings.MARK,
        Binding("e", "export", "Export runs", id="export"),
        Binding("n", "lab_note", "Lab note", id="lab-note"),
        Binding("a", "run_note", "Note on run", id="add-note"),
        bindings.FILTER,
        bindings.HELP,
        bindings.QUIT,
    ]

    def __init__(self, state: LabState):
        super().__init__(state)
        self.entries: list[Entry] = []
        self.shown: list[Entry] = []
        self.marked: set[str] = set()
        self.filter_text = ""
        self.error: str | None = None
        self._rendered: tuple | None = None
        self._loaded = False
        self.compact = False  # narrow terminal: times without the year
        self._shown: dict[str, list] = {}  # entry key -> the cells on screen

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter entries (time, run, kind, step, text)", id="lablog-filter")
        yield DataTable(id="lablog", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lablog-detail")
        yield Static("", id="lablog-status")
        yield GrokFooter()

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_BELOW
        self.set_class(narrow, "-narrow")
        if narrow != self.compact:
            self.compact = narrow
            if self.entries:  # already shown: show again with the other time format
                self.render_table()

    def on_mount(self) -> None:
        self.title = "lab log"
        self.sub_title = str(self.state.lab.root)
        table = self.query_one("#lablog", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#lablog-filter", Input).display = False
        table.focus()
        super().on_mount()

    # --- data ------------------------------------------------------------------------------

    def show_lab(self, change: LabChange) -> None:
        snapshot = self.state.snapshot
        self.error = None
        self.entries = timeline(list(snapshot.views.values()), snapshot.notes, snapshot.events)
        self.render_table()

    def show_problem(self, message: str) -> None:
        self.error = message
        self.update_status()

    def matches(self, entry: Entry) -> bool:
        haystack = entry.haystack()
        return all(word in haystack for word in self.filter_text.lower().split())

    def render_table(self) -> None:
        self.shown = [entry for entry in self.entries if self.matches(entry)]
        state = (tuple(self.shown), frozenset(self.marked), self.compact)
        if state != self._rendered:
            self._rendered = state
            table = self.query_one("#lablog", DataTable)
            rows = [
                (entry.key, row_cells(entry, entry.key in self.marked, self.compact))
                for entry in self.shown
            ]
            sync_rows(table, rows, self._shown)
            if not self._loaded and rows:
                table.move_cursor(row=len(rows) - 1, animate=False)  # the newest entry
            self._loaded = self._loaded or bool(self.entries)
        self.update_status()
        self.update_detail()

    def update_status(self) -> None:
        if self.error:
            self.query_one("#lablog-status", Static).update(Text(self.error, style="bold red"))
            return
        status = f"{len(self.shown)} of {len(self.entries)} entries"
        if self.marked:
            status += f" · {len(self.marked)} marked"
        if self.filter_text:
            status += f" · filter: {self.filter_text}"
        if not self.entries:
            status = "The lab log is empty: launch a run, or press n for a lab note."
        self.query_one("#lablog-status", Static).update(status)

    def selected_entry(self) -> Entry | None:
        key = selected_key(self.query_one("#lablog", DataTable))
        return next((entry for entry in self.shown if entry.key == key), None)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.update_detail()

    def update_detail(self) -> None:
        entry = self.selected_entry()
        detail = self.query_one("#lablog-detail", Static)
        if entry is None:
            detail.update("")
            return
        text = Text()
        text.append(f"{entry.run or 'lab'}", style="bold")
        if entry.step is not None:
            text.append(f" @ step {entry.step}", style="bold")
        text.append(f"  {entry.what}: ", style="dim")
        text.append(entry.text)
        detail.update(text)

    # --- actions ---------------------------------------------------------------------------

    def action_back(self) -> None:
        box = self.query_one("#lablog-filter", Input)
        if box.has_focus:  # escape in the filter box clears and closes the filter first
            box.value = ""
            self.filter_text = ""
            self.render_table()
            self._filter_done()
            return
        self.app.pop_screen()

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        if entry.run is None:
            self.notify("A lab note belongs to no run")
            return
        self.post_message(messages.OpenMonitor(entry.run))

    def action_toggle_mark(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.marked ^= {entry.key}
            table = self.query_one("#lablog", DataTable)
            row = table.cursor_row
            self.render_table()
            if row + 1 < table.row_count:  # like a file manager: mark, then move on
                table.move_cursor(row=row + 1, animate=False)

    def runs_to_export(self) -> list[str]:
        """The runs of the marked entries, or of the highlighted entry when none is marked."""
        if self.marked:
            chosen = [entry for entry in self.entries if entry.key in self.marked]
        else:
            entry = self.selected_entry()
            chosen = [entry] if entry else []
        return sorted({entry.run for entry in chosen if entry.run})

    def action_export(self) -> None:
        run_ids = self.runs_to_export()
        if not run_ids:
            message = "No run in the chosen entries (lab notes belong to no run)"
            self.notify(message, severity="warning")
            return
        self.post_message(messages.ExportRuns(run_ids))

    def action_lab_note(self) -> None:
        self.post_message(messages.AddNote(None))

    def action_run_note(self) -> None:
        entry = self.selected_entry()
        if entry is None or entry.run is None:
            self.action_lab_note()
            return
        self.post_message(messages.AddNote(entry.run, entry.step))

    def action_filter(self) -> None:
        box = self.query_one("#lablog-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#lablog-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.render_table()

    @on(Input.Submitted, "#lablog-filter")
    def _filter_done(self) -> None:
        box = self.query_one("#lablog-filter", Input)
        box.display = bool(self.filter_text)
        self.query_one("#lablog", DataTable).focus()
