"""The phase diagram: a sweep's points as coloured cells on two axes, the cursor on one.

Outcomes take Liu et al.'s colours and a letter each (C, G, M, X), so the diagram reads
under NO_COLOR too; a point still training shows `…` and how far it is, one not started
`·`; seeds that disagree add `~`. A numeric view colours by a number on a viridis ramp and
prints the number. The legend sits under the grid; the cursor is drawn as [ ].
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from grokterm.lab.records import RunStatus
from grokterm.sweep.diagram import (
    OUTCOME_LETTER,
    OUTCOME_RGB,
    OUTCOME_VIEW,
    Diagram,
    Point,
    view_label,
)
from grokterm.sweep.report import coord_text

RGB = tuple[int, int, int]
# matplotlib's viridis at 0, ¼, ½, ¾ and 1: the ramp Liu et al.'s colours come from.
VIRIDIS: list[RGB] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
MIN_CELL_WIDTH = 5
MAX_CELL_WIDTH = 9
MAX_ROW_HEIGHT = 3
FRAME_ROWS = 4  # the y axis's name, the x axis line, its labels and its name
LEGEND_ROWS = 3
RAMP_WIDTH = 16
MARK = "●"
RUNNING, QUEUED, DISAGREE = "…", "·", "~"
ENDED_MARKS = {RunStatus.CRASHED: "!", RunStatus.DIVERGED: "!", RunStatus.STOPPED: "‖"}


def ramp(share: float) -> RGB:
    """Viridis at `share` (0..1), interpolated between its five stops."""
    share = min(max(share, 0.0), 1.0) * (len(VIRIDIS) - 1)
    low = min(int(share), len(VIRIDIS) - 2)
    part = share - low
    a, b = VIRIDIS[low], VIRIDIS[low + 1]
    return tuple(round(a[i] + (b[i] - a[i]) * part) for i in range(3))  # type: ignore[return-value]


def colour(rgb: RGB) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def on(rgb: RGB) -> Style:
    """Text on this background, black or white, whichever reads."""
    light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140
    return Style(color="black" if light else "white", bgcolor=colour(rgb))


def ticks(values: list) -> list[str]:
    """An axis's values as short as they read, in one style: 1e-4 … 1e-2 for a log range,
    0 … 10 for a linear one."""
    if not all(isinstance(value, float) for value in values):
        return [coord_text(value) for value in values]
    plain = [f"{value:.2g}" for value in values]
    scientific = [scientific_text(value) for value in values]
    return scientific if max(map(len, scientific)) < max(map(len, plain)) else plain


def scientific_text(value: float) -> str:
    mantissa, _, exponent = f"{value:.1e}".partition("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def short_number(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}" if abs(value) >= 1 else f"{value:.2f}"


@dataclass(frozen=True)
class Face:
    """What one point shows: its text and its style."""

    text: str
    style: Style


def outcome_face(point: Point | None) -> Face:
    if point is None:
        return Face("", Style())
    outcome = point.outcome
    if outcome is not None:
        text = OUTCOME_LETTER[outcome] + (DISAGREE if point.disagrees else "")
        text += RUNNING if point.training else ""
        return Face(text, on(OUTCOME_RGB[outcome]))
    return pending_face(point)


def pending_face(point: Point) -> Face:
    """A point with no outcome (or no number) yet: training, waiting, or ended without one."""
    if point.running:
        return Face(f"{RUNNING}{point.progress:.0%}", Style(bold=True))
    if point.training:
        return Face(QUEUED, Style(dim=True))
    ended = [ENDED_MARKS[run.status] for run in point.runs if run.status in ENDED_MARKS]
    return Face(ended[0] if ended else "?", Style(color="red" if "!" in ended else None))


def number_face(point: Point | None, key: str, low: float, high: float) -> Face:
    if point is None:
        return Face("", Style())
    value = point.value(key)
    if value is None:
        return pending_face(point) if point.training else Face("–", Style(dim=True))
    share = (value - low) / (high - low) if high > low else 0.5
    text = short_number(value) + (RUNNING if point.training else "")
    return Face(text, on(ramp(share)))


class PhaseDiagram(Widget, can_focus=True):
    """A sweep's diagram; arrows move the cursor, which is posted as CursorMoved."""

    BINDINGS = [
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("up", "move(0, 1)", "Up", show=False),
        Binding("down", "move(0, -1)", "Down", show=False),
    ]

    @dataclass
    class CursorMoved(Message):
        x: int
        y: int

    def __init__(self, id: str | None = None):
        super().__init__(id=id)
        self.diagram: Diagram | None = None
        self.view = OUTCOME_VIEW
        self.cursor = (0, 0)
        self.marked: frozenset[str] = frozenset()

    def show(self, diagram: Diagram, view: str, marked: set[str]) -> None:
        self.diagram, self.view, self.marked = diagram, view, frozenset(marked)
        x, y = self.cursor
        self.cursor = (min(x, diagram.width - 1), min(y, diagram.height - 1))
        self.refresh()

    def action_move(self, dx: int, dy: int) -> None:
        if self.diagram is None:
            return
        x = min(max(self.cursor[0] + dx, 0), self.diagram.width - 1)
        y = min(max(self.cursor[1] + dy, 0), self.diagram.height - 1)
        if (x, y) != self.cursor:
            self.cursor = (x, y)
            self.refresh()
            self.post_message(self.CursorMoved(x, y))

    def render(self) -> Text:
        if self.diagram is None:
            return Text("")
        return draw(
            self.diagram, self.view, self.cursor, self.marked, self.size.width, self.size.height
        )


def draw(
    diagram: Diagram,
    view: str,
    cursor: tuple[int, int],
    marked: frozenset[str],
    width: int,
    height: int,
) -> Text:
    """The grid (largest y on top), its axes, and the legend under it."""
    x_labels = ticks(diagram.x_axis.values)
    y_labels = ticks(diagram.y_axis.values) if diagram.y_axis else [""]
    label_width = max(len(label) for label in y_labels)
    left = label_width + 2 if diagram.y_axis else 0
    room = (height - FRAME_ROWS - LEGEND_ROWS) // diagram.height
    rows = max(1, min(MAX_ROW_HEIGHT, room))
    fit = (width - left) // diagram.width - 1
    squarish = min(MAX_CELL_WIDTH, 3 * rows + 1)  # a terminal cell is about twice as tall
    cell = max(MIN_CELL_WIDTH, min(max(squarish, *map(len, x_labels)), fit))
    face = faces(diagram, view)
    shown = {place: face(point) for place, point in diagram.points.items()}
    text = Text(no_wrap=True, overflow="crop")
    if diagram.y_axis:
        text.append(f"{diagram.y_axis.field}\n", style="bold")
    for y in reversed(range(diagram.height)):
        for row in range(rows):
            label = y_labels[y] if row == rows // 2 else ""
            text.append(f"{label:>{label_width}} │" if diagram.y_axis else "")
            middle = row == rows // 2
            for x in range(diagram.width):
                point = diagram.point(x, y)
                look = shown.get((x, y), Face("", Style()))
                look = look if middle else Face("", look.style)
                text.append_text(cell_text(look, point, (x, y) == cursor, marked, cell, middle))
                text.append(" ")
            text.append("\n")
    if diagram.y_axis:
        text.append(" " * (label_width + 1) + "└" + "─" * (diagram.width * (cell + 1)) + "\n")
    text.append(" " * left + "".join(f"{label[:cell]:^{cell}} " for label in x_labels) + "\n")
    text.append(" " * left + f"{diagram.x_axis.field:^{diagram.width * (cell + 1)}}\n", "bold")
    text.append_text(legend(diagram, view, width))
    return text


def faces(diagram: Diagram, view: str):
    if view == OUTCOME_VIEW:
        return outcome_face
    values = diagram.values(view) or [0.0]
    low, high = min(values), max(values)
    return lambda point: number_face(point, view, low, high)


def cell_text(
    face: Face,
    point: Point | None,
    here: bool,
    marked: frozenset[str],
    cell: int,
    middle: bool,
) -> Text:
    content = face.text
    if middle and point is not None and point.runs and marked.issuperset(point.ids):
        content = MARK + content
    body = f"{content:^{cell - 2}}"[: cell - 2]
    edges = ("[", "]") if here and middle else (" ", " ")
    style = face.style + Style(bold=True) if here else face.style
    return Text(edges[0] + body + edges[1], style=style)


def legend(diagram: Diagram, view: str, width: int) -> Text:
    items: list[Text] = []
    if view == OUTCOME_VIEW:
        for outcome, letter in OUTCOME_LETTER.items():
            item = Text(f" {letter} ", style=on(OUTCOME_RGB[outcome]))
            items.append(item + Text(f" {outcome.value}"))
        tail = "seeds disagree" if any(p.disagrees for p in diagram.points.values()) else None
        items += [Text(f"{DISAGREE} {tail}")] if tail else []
    else:
        values = diagram.values(view)
        title = f"{view_label(view)}, mean over seeds"
        if values:
            low, high = min(values), max(values)
            bar = Text()
            for i in range(RAMP_WIDTH):
                bar.append("█", style=colour(ramp(i / (RAMP_WIDTH - 1))))
            low_text, high_text = short_number(low), short_number(high)
            items.append(Text(f"{title}: {low_text} ") + bar + Text(f" {high_text}"))
        else:
            items.append(Text(f"{title}: no point has it yet"))
        items.append(Text("– none"))
    items += [Text(f"{RUNNING}% training"), Text(f"{QUEUED} queued"), Text("! crashed")]
    items += [Text("‖ stopped"), Text(f"{MARK} marked")]
    return wrap(items, width)


def wrap(items: list[Text], width: int) -> Text:
    text, line = Text(), 0
    for item in items:
        if line and line + 2 + item.cell_len > width:
            text.append("\n")
            line = 0
        if line:
            text.append("  ")
            line += 2
        text.append_text(item)
        line += item.cell_len
    return text
