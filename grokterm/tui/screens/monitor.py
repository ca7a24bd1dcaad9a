"""One run, live: accuracy, loss, HTSR α, spectral energy, weight norm and a metric of the
user's choice in six chart slots, with events and notes. A slot can be pinned to a chart or
a metric; pins are remembered per lab (tui/monitor_layout.py)."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Header, Static

from grokterm.lab import LabError, data_text
from grokterm.lab.records import FINAL, PHASE_MARKS, Event, RunStatus, RunView
from grokterm.tui import bindings, messages
from grokterm.tui.monitor_layout import DEFAULT_SLOTS, SLOTS, SlotContent, load_pins, save_pins
from grokterm.tui.panels import PANELS, charted_by_panels, trap_markers
from grokterm.tui.rate import StepRate, duration_text, eta_text
from grokterm.tui.screens.base import SMOOTHING_LEVELS, ChartScreen, GrokFooter
from grokterm.tui.series import RunSeries
from grokterm.tui.state import LabChange, LabState
from grokterm.tui.widgets import NARROW_BELOW
from grokterm.tui.widgets.chart import Curve, Marker, MetricChart

# What the compare screen charts on its own (it offers the rest under `m`).
SHOWN_ELSEWHERE = {name for key in ("accuracy", "loss", "norm") for name, _, _ in PANELS[key].fixed}
FREE_SLOT = DEFAULT_SLOTS.index(None)  # the slot of "any other metric", focused at first
PER_PAGE = 2  # charts side by side on a narrow terminal; `c` moves to the next
TITLE_MAX = 38  # characters: the width of a chart at 80x24, two to a row


def rate_text(rate: float | None) -> str:
    if not rate:
        return "– steps/s"
    return f"{rate:,.0f} steps/s" if rate >= 10 else f"{rate:.1f} steps/s"


def slot_title(name: str, hint: str, *, focused: bool, pinned: bool) -> str:
    """`▸ name · pinned  hint`, in TITLE_MAX characters: the hint goes first, then the
    start of the name (plotext drops a title wider than its chart)."""
    mark, pin = ("▸ " if focused else ""), (" · pinned" if pinned else "")
    room = TITLE_MAX - len(mark) - len(pin)
    if len(name) + len(hint) <= room:
        return mark + name + pin + hint
    return mark + (name if len(name) <= room else "…" + name[-(room - 1) :]) + pin


class MonitorScreen(ChartScreen):
    """Monitor: one run's live charts, events and notes"""

    BINDINGS = [
        bindings.BACK,
        bindings.TOGGLE_LOG,
        bindings.SMOOTHING,
        Binding("c", "next_chart", "Next chart", id="next-chart"),
        bindings.NEXT_METRIC,
        Binding("M", "pick_metric", "Pick metric", show=False, id="pick-metric"),  # in help
        Binding("p", "pin", "Pin chart", id="pin-chart"),
        Binding("u", "unpin", "Unpin", id="unpin-chart"),
        Binding("a", "add_note", "Note here", id="add-note"),
        bindings.STOP,
        bindings.RESUME,
        bindings.EXPORT,
        bindings.HELP,
        bindings.QUIT,
    ]

    def __init__(self, state: LabState, run_id: str):
        super().__init__(state)
        self.run_id = run_id
        self.tail = state.tail(run_id)
        self.view: RunView | None = None  # until the first read, or while the lab lacks it
        self.absent = False  # the lab was read and does not list the run
        self.events: list[Event] = []
        self.notes: list[dict[str, Any]] = []
        self.log_x = True
        self.smoothing_index = 0
        self.shown: list[SlotContent | None] = list(DEFAULT_SLOTS)  # None: the first other metric
        self.pins: dict[int, SlotContent] = {}
        self.slot = FREE_SLOT  # the slot that `m`, `M`, `p` and `u` act on
        self.rate = StepRate()
        self._sample: tuple[float, int] | None = None
        self._drawn_version = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="monitor-status")
        with Horizontal(id="monitor-body"):
            with Grid(id="charts"):
                for index in range(SLOTS):
                    chart = MetricChart("", id=f"slot-{index + 1}")
                    chart.can_focus = True
                    yield chart
            with VerticalScroll(id="monitor-side"):
                yield Static("", id="monitor-events")
        yield GrokFooter()

    def charts(self) -> list[MetricChart]:
        return list(self.query(MetricChart))

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")
        self.layout_charts()

    def layout_charts(self) -> None:
        """Wide: all six slots. Narrow (80x24): the page of two that holds the slot in use."""
        narrow = self.has_class("-narrow")
        page = self.slot // PER_PAGE
        for index, chart in enumerate(self.charts()):
            chart.display = not narrow or index // PER_PAGE == page

    def on_mount(self) -> None:
        self.title = self.run_id
        self.restore_pins()
        self.charts()[self.slot].focus()
        self.state.watch([self.run_id], with_column=True)
        self.post_message(messages.RefreshLab())  # its stream now, not at the next tick
        super().on_mount()

    def on_unmount(self) -> None:
        self.state.unwatch([self.run_id], with_column=True)

    def restore_pins(self) -> None:
        pins, problem = load_pins(self.state.lab.root)
        unknown = [c.name for c in pins.values() if c.kind == "chart" and c.name not in PANELS]
        if unknown:
            pins, problem = {}, f"it names no such chart: {', '.join(unknown)}"
        if problem:
            self.notify(f"Monitor layout: default slots, as {problem}", severity="warning")
        self.pins = pins
        for index, content in pins.items():
            self.shown[index] = content

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, MetricChart):
            self.slot = self.charts().index(event.widget)
            self.layout_charts()
            self.update_charts()

    def show_lab(self, change: LabChange) -> None:
        if not (change.log or change.touches([self.run_id])):
            return
        snapshot = self.state.snapshot
        self.apply(
            snapshot.views.get(self.run_id),
            snapshot.events_of(self.run_id),
            snapshot.notes_of(self.run_id),
            self.run_id in change.streams,
        )

    def apply(self, view: RunView | None, events: list, notes: list, changed: bool) -> None:
        """Show the run as last read; a view of None: the lab does not list the run."""
        self.absent = view is None
        if view is not None:
            self.measure_rate(view)
        self.view = view
        if view is not None and view.data:  # the header says what the run trains on
            self.sub_title = data_text(view.data)
        side_changed = (events, notes) != (self.events, self.notes)
        self.events, self.notes = events, notes
        self.update_status()
        if side_changed:
            self.query_one("#monitor-events", Static).update(self.side_text())
        # The tail is shared: another screen may have read the new records, so compare versions.
        if changed or side_changed or self.tail.series.version != self._drawn_version:
            self._drawn_version = self.tail.series.version
            self.update_charts()

    def measure_rate(self, view: RunView) -> None:
        """Feed the smoothed rate with the run's heartbeats (the worker's clock and step);
        without one, with the time a new step is seen."""
        if view.status != RunStatus.RUNNING:
            return
        if view.heartbeat is None and self._sample and self._sample[1] == view.step:
            return
        sample = (view.heartbeat or time.time(), view.step)
        if sample != self._sample:
            self._sample = sample
            self.rate.add(*sample)

    def update_status(self) -> None:
        view = self.view or RunView(id=self.run_id)
        text = Text()
        shown = view.status if self.view else "not in the lab" if self.absent else "…"
        text.append(f" {shown} ", style="bold reverse")
        text.append(f"  step {view.step}/{view.total or '?'}")
        text.append(self.speed_text(view))
        device = view.device or view.summary.get("device") or "?"
        text.append(f"   device {device}")
        outcome = view.summary.get("phase")
        if outcome:
            text.append(f"   outcome {outcome}", style="bold")
        if view.reason:
            text.append(f"   ({view.reason})", style="italic")
        axis = "log" if self.log_x else "linear"
        text.append(f"   x {axis} · EMA {SMOOTHING_LEVELS[self.smoothing_index]}", style="dim")
        self.query_one("#monitor-status", Static).update(text)

    def speed_text(self, view: RunView) -> str:
        """A running run's smoothed rate and ETA; an ended run's training time, no rate."""
        if view.status == RunStatus.RUNNING:
            rate = self.rate.rate
            return f"   {rate_text(rate)}   ETA {eta_text(view.step, view.total, rate)}"
        seconds = view.summary.get("train_seconds")
        if view.status in FINAL and isinstance(seconds, int | float):
            return f"   trained {duration_text(seconds)}"
        return ""

    def markers(self) -> list[Marker]:
        marks = [Marker(e.step, e.kind) for e in self.events if e.kind in PHASE_MARKS]
        return marks + [Marker(n["step"], "✎") for n in self.notes if n.get("step") is not None]

    def extra_names(self, series: RunSeries) -> list[str]:
        """The metrics no built-in chart draws: what `m` steps through."""
        charted = charted_by_panels(series)
        return [name for name in series.names() if name not in charted]

    def content_of(self, index: int, extras: list[str]) -> SlotContent | None:
        content = self.shown[index]
        if content is None and extras:
            return SlotContent("metric", extras[0])
        return content

    def update_charts(self) -> None:
        series = self.tail.series
        markers = self.markers()
        extras = self.extra_names(series)
        smoothing = SMOOTHING_LEVELS[self.smoothing_index]
        x_range = series.step_span(self.log_x)  # one x axis for all charts: events line up
        for index, chart in enumerate(self.charts()):
            content = self.content_of(index, extras)
            curves, marks, name, hint = self.slot_data(chart, content, series, markers, extras)
            pinned = content is not None and self.pins.get(index) == content
            chart.title = slot_title(name, hint, focused=index == self.slot, pinned=pinned)
            chart.configure(log_x=self.log_x, smoothing=smoothing, x_range=x_range)
            version = (series.version, len(marks), chart.title, chart.log_y, chart.guides)
            chart.show(curves, marks, version)

    def slot_data(
        self,
        chart: MetricChart,
        content: SlotContent | None,
        series: RunSeries,
        markers: list[Marker],
        extras: list[str],
    ) -> tuple[list[Curve], list[Marker], str, str]:
        """Set the chart's y axis and guides for `content`; its curves, markers, title and
        a hint for the title."""
        panel = PANELS.get(content.name) if content and content.kind == "chart" else None
        chart.log_y = panel.log_y if panel else False
        chart.guides = panel.guides if panel else ()
        if panel is not None:
            traps = trap_markers(series) if panel.traps else []
            hint = "  ×n: traps" if traps else ""
            return panel.curves(series), markers + traps, panel.title, hint
        if content is None:
            return [], markers, "other metric", "  (m)"
        values = series.get(content.name)
        curves = [Curve(content.name, values, "yellow")] if len(values) else []
        return curves, markers, content.name, f"  (m: next of {len(extras)})"

    def side_text(self) -> Text:
        text = Text()
        text.append("events\n", style="bold underline")
        for event in self.events:
            text.append(f"{event.step:>7} {event.kind:<7}", style="bold")
            text.append(f" {event.detail}\n")
        if not self.events:
            text.append("none yet\n", style="dim")
        text.append("\nnotes\n", style="bold underline")
        for note in self.notes:
            where = f"{note['step']:>7}" if note.get("step") is not None else "    run"
            text.append(f"{where} ", style="bold")
            text.append(f"{note['text']}\n")
        if not self.notes:
            text.append("none (a adds one at the current step)\n", style="dim")
        return text

    # --- actions ---------------------------------------------------------------------------

    def action_next_chart(self) -> None:
        """The next slot: on a narrow terminal, its page of charts comes into view."""
        self.slot = (self.slot + 1) % SLOTS
        self.layout_charts()
        self.charts()[self.slot].focus()

    def show_metric(self, name: str) -> None:
        self.shown[self.slot] = SlotContent("metric", name)
        self.update_charts()

    def action_next_metric(self) -> None:
        extras = self.extra_names(self.tail.series)
        if not extras:
            self.notify("This run has no other metrics yet")
            return
        content = self.content_of(self.slot, extras)
        current = content.name if content and content.kind == "metric" else None
        index = extras.index(current) + 1 if current in extras else 0
        self.show_metric(extras[index % len(extras)])

    def action_pick_metric(self) -> None:
        from grokterm.tui.screens.dialogs import MetricPicker

        names = self.tail.series.names()
        if not names:
            self.notify("This run has no metrics yet")
            return

        def chosen(name: str | None) -> None:
            if name:
                self.show_metric(name)

        self.app.push_screen(MetricPicker(names), chosen)

    def action_pin(self) -> None:
        """Keep what the slot shows there, for every run of this lab, until unpinned."""
        content = self.content_of(self.slot, self.extra_names(self.tail.series))
        if content is None:
            self.notify("Nothing to pin yet: this slot shows no metric")
            return
        if self.remember({**self.pins, self.slot: content}):
            self.shown[self.slot] = content
            self.notify(f"Slot {self.slot + 1} pinned to {self.content_name(content)}")
        self.update_charts()

    def action_unpin(self) -> None:
        """The slot shows its default chart again, and is no longer pinned."""
        if self.slot in self.pins:
            pins = {index: c for index, c in self.pins.items() if index != self.slot}
            if not self.remember(pins):
                return
            self.notify(f"Slot {self.slot + 1} unpinned")
        self.shown[self.slot] = DEFAULT_SLOTS[self.slot]
        self.update_charts()

    def remember(self, pins: dict[int, SlotContent]) -> bool:
        try:
            save_pins(self.state.lab.root, pins)
        except (OSError, LabError) as exc:
            self.notify(f"Could not save the monitor layout: {exc}", severity="error")
            return False
        self.pins = pins
        return True

    @staticmethod
    def content_name(content: SlotContent) -> str:
        panel = PANELS.get(content.name) if content.kind == "chart" else None
        return panel.title if panel else content.name

    def action_add_note(self) -> None:
        step = self.view.step if self.view else None
        step = step if step is not None else self.tail.series.last_step
        self.post_message(messages.AddNote(self.run_id, step))

    def action_stop_run(self) -> None:
        self.post_message(messages.StopRun(self.run_id))

    def action_resume_run(self) -> None:
        self.post_message(messages.ResumeRun(self.run_id))

    def action_export(self) -> None:
        self.post_message(messages.ExportRuns([self.run_id]))
