"""One run, live: accuracy, loss, weight norm and any other metric, with events and notes."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Header, Static

from grokterm.lab import data_text
from grokterm.lab.records import PHASE_MARKS, Event, RunStatus, RunView
from grokterm.tui import bindings, messages
from grokterm.tui.screens.base import SMOOTHING_LEVELS, ChartScreen, GrokFooter
from grokterm.tui.series import RunSeries
from grokterm.tui.state import LabChange, LabState
from grokterm.tui.widgets import NARROW_BELOW
from grokterm.tui.widgets.chart import Curve, Marker, MetricChart

CORE_METRICS = {
    "accuracy": [("train_acc", "train", "cyan+"), ("test_acc", "test", "orange+")],
    "loss": [
        ("loss", "step loss", "gray"),
        ("train_loss", "train", "cyan+"),
        ("test_loss", "test", "orange+"),
    ],
    "weight norm": [
        ("weight_norm", "‖θ‖", "green+"),
        ("last_layer_norm", "last layer", "magenta+"),
    ],
}
SHOWN_ELSEWHERE = {name for curves in CORE_METRICS.values() for name, _, _ in curves}


def eta_text(view: RunView, rate: float | None) -> str:
    total, step = view.total or 0, view.step
    if not rate or view.status != RunStatus.RUNNING or step >= total:
        return "–"
    seconds = int((total - step) / rate)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class MonitorScreen(ChartScreen):
    """Monitor: one run's live charts, events and notes"""

    BINDINGS = [
        bindings.BACK,
        bindings.TOGGLE_LOG,
        bindings.SMOOTHING,
        bindings.NEXT_METRIC,
        Binding("M", "pick_metric", "Pick metric", show=False, id="pick-metric"),  # in help
        Binding("c", "next_chart", "Next chart (narrow)", show=False, id="next-chart"),
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
        self.extra_metric: str | None = None
        self._rate: tuple[float, int] | None = None
        self.steps_per_second: float | None = None
        self.chart_index = 0
        self._drawn_version = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="monitor-status")
        with Horizontal(id="monitor-body"):
            with Grid(id="charts"):
                yield MetricChart("accuracy", id="chart-accuracy")
                yield MetricChart("loss", log_y=True, id="chart-loss")
                yield MetricChart("weight norm", id="chart-norm")
                yield MetricChart("other metric (m)", id="chart-extra")
            with VerticalScroll(id="monitor-side"):
                yield Static("", id="monitor-events")
        yield GrokFooter()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")
        self.layout_charts()

    def layout_charts(self) -> None:
        """Wide: all four charts. Narrow (80x24): one at a time, `c` shows the next."""
        narrow = self.has_class("-narrow")
        for index, chart in enumerate(self.query(MetricChart)):
            chart.display = not narrow or index == self.chart_index

    def on_mount(self) -> None:
        self.title = self.run_id
        self.state.watch([self.run_id], with_column=True)
        self.post_message(messages.RefreshLab())  # its stream now, not at the next tick
        super().on_mount()

    def on_unmount(self) -> None:
        self.state.unwatch([self.run_id], with_column=True)

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
        now, step = time.monotonic(), view.step
        if self._rate and step > self._rate[1] and now > self._rate[0]:
            self.steps_per_second = (step - self._rate[1]) / (now - self._rate[0])
        if not self._rate or step != self._rate[1]:
            self._rate = (now, step)
        if view.status != RunStatus.RUNNING:
            self.steps_per_second = view.summary.get("steps_per_second")

    def update_status(self) -> None:
        view = self.view or RunView(id=self.run_id)
        text = Text()
        shown = view.status if self.view else "not in the lab" if self.absent else "…"
        text.append(f" {shown} ", style="bold reverse")
        text.append(f"  step {view.step}/{view.total or '?'}")
        rate = self.steps_per_second
        text.append(f"   {rate:,.0f} steps/s" if rate else "   – steps/s")
        text.append(f"   ETA {eta_text(view, rate)}")
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

    def markers(self) -> list[Marker]:
        marks = [Marker(e.step, e.kind) for e in self.events if e.kind in PHASE_MARKS]
        return marks + [Marker(n["step"], "✎") for n in self.notes if n.get("step") is not None]

    def extra_names(self, series: RunSeries) -> list[str]:
        return [name for name in series.names() if name not in SHOWN_ELSEWHERE]

    def update_charts(self) -> None:
        series = self.tail.series
        markers = self.markers()
        version = (series.version, len(markers), self.extra_metric)
        smoothing = SMOOTHING_LEVELS[self.smoothing_index]
        charts = dict(
            zip(CORE_METRICS, ("#chart-accuracy", "#chart-loss", "#chart-norm"), strict=True)
        )
        for title, selector in charts.items():
            curves = [
                Curve(label, series.get(name), color)
                for name, label, color in CORE_METRICS[title]
                if len(series.get(name))
            ]
            chart = self.query_one(selector, MetricChart)
            chart.configure(log_x=self.log_x, smoothing=smoothing)
            chart.show(curves, markers, version)
        extras = self.extra_names(series)
        if self.extra_metric not in extras:
            self.extra_metric = extras[0] if extras else None
        extra = self.query_one("#chart-extra", MetricChart)
        extra.title = f"{self.extra_metric or 'other metric'}  (m: next of {len(extras)})"
        extra.configure(log_x=self.log_x, smoothing=smoothing)
        curves = (
            [Curve(self.extra_metric, series.get(self.extra_metric), "yellow")]
            if (self.extra_metric)
            else []
        )
        extra.show(curves, markers, version)

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
        self.chart_index = (self.chart_index + 1) % len(self.query(MetricChart))
        self.layout_charts()

    def action_next_metric(self) -> None:
        extras = self.extra_names(self.tail.series)
        if not extras:
            self.notify("This run has no other metrics yet")
            return
        index = extras.index(self.extra_metric) + 1 if self.extra_metric in extras else 0
        self.extra_metric = extras[index % len(extras)]
        self.update_charts()

    def action_pick_metric(self) -> None:
        from grokterm.tui.screens.dialogs import MetricPicker

        extras = self.extra_names(self.tail.series)
        if not extras:
            self.notify("This run has no other metrics yet")
            return

        def chosen(name: str | None) -> None:
            if name:
                self.extra_metric = name
                self.update_charts()

        self.app.push_screen(MetricPicker(extras), chosen)

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
