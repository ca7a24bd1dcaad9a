"""What every grokterm screen shares."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from grokterm.tui.bindings import PINNED_ACTIONS
from grokterm.tui.messages import LabChanged, LabProblem, ShowHelp
from grokterm.tui.state import LabChange, LabState


class GrokScreen(Screen):
    """A screen over the lab's shared state: it shows the state's snapshot when mounted and
    again when the App says the lab changed (`show_lab`), and asks the App for the rest."""

    def __init__(self, state: LabState):
        super().__init__()
        self.state = state

    def on_mount(self) -> None:
        if self.state.snapshot.loaded:  # else the first refresh's LabChanged shows it
            self.show_lab(LabChange(log=True))

    def on_lab_changed(self, message: LabChanged) -> None:
        if self.is_attached:
            self.show_lab(message.change)

    def on_lab_problem(self, message: LabProblem) -> None:
        if self.is_attached:
            self.show_problem(message.message)

    def show_lab(self, change: LabChange) -> None:
        """Show what changed; the data is always the newest snapshot's."""

    def show_problem(self, message: str) -> None:
        """Say that the lab cannot be read (the App has notified already)."""

    def action_help(self) -> None:
        self.post_message(ShowHelp(self))

    def action_back(self) -> None:
        self.app.pop_screen()


class GrokFooter(Footer):
    """Textual's footer with the help and quit keys first: where the screen's keys do not
    all fit, the last ones are cut, and those two are never among them."""

    def __init__(self) -> None:
        super().__init__(compact=True)  # a key's padding is room for another key

    async def recompose(self) -> None:
        await super().recompose()
        keys = {getattr(key, "action", None): key for key in self.children}  # FooterKeys
        for action in reversed(PINNED_ACTIONS):
            if action in keys:
                self.move_child(keys[action], before=0)


def sync_rows(table: DataTable, rows: list[tuple[str, list[Any]]], shown: dict[str, list]) -> None:
    """Make `table` show `rows` (key, cells), changing only cells that differ while the
    order of keys holds; otherwise it is rebuilt with the cursor kept on its row.
    `shown` is the caller's record of the cells on screen, updated here."""
    keys = [key for key, _ in rows]
    if keys == list(shown):
        columns = table.ordered_columns
        for key, cells in rows:
            for column, before, after in zip(columns, shown[key], cells, strict=True):
                if before != after:
                    # Widening only: asking DataTable to fit a narrower cell makes it measure
                    # the whole column again, for every such cell (100 live rows: 30k measures).
                    wider = cell_width(after) > column.content_width
                    table.update_cell(key, column.key, after, update_width=wider)
            shown[key] = cells
        return
    selected = selected_key(table)
    table.clear()
    shown.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
        shown[key] = cells
    if selected in shown:
        table.move_cursor(row=table.get_row_index(selected), animate=False)


def cell_width(value: Any) -> int:
    return value.cell_len if isinstance(value, Text) else cell_len(str(value))


def selected_key(table: DataTable) -> str | None:
    if table.row_count == 0:
        return None
    row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    return row_key.value


SMOOTHING_LEVELS = (0.0, 0.6, 0.9, 0.97)


class ChartScreen(GrokScreen):
    """A screen of step charts: log/linear x, EMA strength, and back."""

    log_x = True
    smoothing_index = 0

    @property
    def smoothing(self) -> float:
        return SMOOTHING_LEVELS[self.smoothing_index]

    def update_status(self) -> None:
        raise NotImplementedError

    def update_charts(self) -> None:
        raise NotImplementedError

    def action_toggle_log(self) -> None:
        self.log_x = not self.log_x
        self.update_status()
        self.update_charts()

    def action_smoothing(self) -> None:
        self.smoothing_index = (self.smoothing_index + 1) % len(SMOOTHING_LEVELS)
        self.update_status()
        self.update_charts()
