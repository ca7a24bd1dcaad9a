"""Marked runs side by side: overlaid curves, the config fields that differ, phase timings."""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Header, Label, Static

from grokterm.lab.comparison import PHASE_ROWS
from grokterm.lab.comparison import compare as compare_runs
from grokterm.lab.records import PHASE_MARKS
from grokterm.tui import bindings, messages
from grokterm.tui.screens.base import SMOOTHING_LEVELS, ChartScreen, GrokFooter
from grokterm.tui.screens.monitor import SHOWN_ELSEWHERE
from grokterm.tui.screens.runs import STATUS_STYLE
from grokterm.tui.series import RunSeries, Series
from grokterm.tui.state import LabChange, LabState
from grokterm.tui.widgets import NARROW_BELOW
from grokterm.tui.widgets.chart import PALETTE, Curve, Marker, MetricChart, rich_colour, value_ticks

SPLITS = ("test", "train")
START, END = "○", "●"  # a trajectory's first and last point in the LU view
LU_TIME = f"time runs {START} → {END}"


def run_colour(run_ids: list[str], run_id: str) -> str:
    """A run's colour: its position among the compared runs, so it never changes."""
    return PALETTE[run_ids.index(run_id) % len(PALETTE)]


def loss_vs_norm(series: RunSeries, loss: str) -> Series:
    """One run's trajectory in the (‖θ‖, loss) plane, in step order (Omnigrok's LU view).

    x is the weight norm at each probe step that also has the loss; Series.steps holds x.
    """
    norm = series.get("weight_norm")
    n = min(len(norm.steps), len(norm.values))  # a poll thread may be appending
    norms = dict(zip(norm.steps[:n], norm.values[:n], strict=True))
    losses = series.get(loss)
    m = min(len(losses.steps), len(losses.values))
    out = Series()
    for step, value in zip(losses.steps[:m], losses.values[:m], strict=True):
        if step in norms:
            out.add(norms[step], value)
    return out


def config_cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)  # exact: 1e-4 and 3e-4 must not both read 0.000


def phase_cell(key: str, value: Any) -> Any:
    if value is None:
        return "–"
    if key in ("train_acc", "test_acc") and isinstance(value, float):
        return f"{value:.3f}"
    if key == "status":
        return Text(value, style=STATUS_STYLE.get(value, ""))
    return str(value)


class TrajectoryChart(MetricChart):
    """A curve in the (weight norm, loss) plane: x is ‖θ‖ on a linear axis, points in step
    order, so the line is the path the run took (Liu et al. 2023, "Omnigrok"); each path
    starts at ○ and ends at ●, so the direction of time reads without colour."""

    def rebuild(self) -> None:
        super().rebuild()
        buckets = max(10, self.size.width)
        for curve in self.curves:
            xs, ys = self._prepared(curve.series, buckets)
            if xs:
                self.plt.scatter([xs[0]], [ys[0]], marker=START, color=curve.color)
                self.plt.scatter([xs[-1]], [ys[-1]], marker=END, color=curve.color)

    def _prepared(self, series: Series, buckets: int) -> tuple[list[float], list[float]]:
        n = min(len(series.steps), len(series.values))
        xs, ys = list(series.steps[:n]), list(series.values[:n])
        if self.log_y:
            kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0]
            xs, ys = [x for x, _ in kept], [math.log10(y) for _, y in kept]
        stride = math.ceil(len(xs) / (2 * buckets)) if buckets > 0 else 1
        if stride > 1:  # x is not sorted, so thin by stride (keeping the end), not by bucket
            last = len(xs) - 1
            keep = [i for i in range(len(xs)) if i % stride == 0 or i == last]
            xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
        return xs, ys

    def _axes(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        if self.log_y and y_hi > y_lo:
            positions, labels = value_ticks(y_lo, y_hi)
            self.plt.yticks(positions, labels)
            self.plt.ylim(positions[0], positions[-1])  # else outer ticks land on the title
        self.plt.xlabel("weight norm ‖θ‖")


class AccuracyChart(MetricChart):
    """Accuracies on a fixed 0–1 axis, so runs compare at a glance."""

    def _axes(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        super()._axes(x_lo, x_hi, y_lo, y_hi)
        self.plt.ylim(0.0, 1.0)


class CompareScreen(ChartScreen):
    """Compare: marked runs overlaid"""

    BINDINGS = [
        bindings.BACK,
        bindings.TOGGLE_LOG,
        bindings.SMOOTHING,
        Binding("t", "toggle_split", "Train/test", id="toggle-split"),
        bindings.NEXT_METRIC,
        Binding("u", "toggle_lu", "Loss vs ‖θ‖", id="toggle-lu"),
        bindings.EXPORT,
        bindings.HELP,
        bindings.QUIT,
    ]

    def __init__(self, state: LabState, run_ids: list[str]):
        super().__init__(state)
        self.run_ids = list(dict.fromkeys(run_ids))  # order kept, duplicates dropped
        self.present: list[str] = []  # run ids found in the lab, in run_ids order
        self.missing: list[str] = []
        self.comparison: dict[str, Any] | None = None
        self.error: str | None = None
        self.log_x = True
        self.smoothing_index = 0
        self.split = "test"
        self.lu_view = False
        self.extra_metric: str | None = None
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-status")
        with VerticalScroll(id="compare-body"):
            with Grid(id="compare-charts"):
                yield AccuracyChart("accuracy", id="cmp-accuracy")
                yield MetricChart("loss", log_y=True, id="cmp-loss")
                yield TrajectoryChart(
                    f"train loss vs ‖θ‖, {LU_TIME}", log_y=True, id="cmp-lu-train"
                )
                yield TrajectoryChart(f"test loss vs ‖θ‖, {LU_TIME}", log_y=True, id="cmp-lu-test")
                yield MetricChart("weight norm ‖θ‖", id="cmp-norm")
                yield MetricChart("other metric (m)", id="cmp-extra")
            with Horizontal(id="compare-tables"):
                with Vertical(id="compare-diff-pane"):
                    yield Label("config: fields that differ", id="compare-diff-caption")
                    yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
                with Vertical(id="compare-phases-pane"):
                    yield Label("phase timings (steps)", classes="compare-caption")
                    yield DataTable(id="compare-phases", cursor_type="row", zebra_stripes=True)
        yield GrokFooter()

    def on_resize(self) -> None:
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")

    def on_mount(self) -> None:
        self.title = f"compare {len(self.run_ids)} runs"
        self.sub_title = " · ".join(self.run_ids)
        for selector in ("#cmp-lu-train", "#cmp-lu-test"):
            self.query_one(selector).display = False
        self.update_status()
        self.query_one("#compare-body").focus()
        self.state.watch(self.run_ids)
        self.post_message(messages.RefreshLab())  # their streams now, not at the next tick
        super().on_mount()

    def on_unmount(self) -> None:
        self.state.unwatch(self.run_ids)

    # --- data ------------------------------------------------------------------------------

    def show_lab(self, change: LabChange) -> None:
        if not (change.log or change.touches(self.run_ids)):
            return
        views = self.state.snapshot.views
        missing = [run_id for run_id in self.run_ids if run_id not in views]
        present = [views[run_id] for run_id in self.run_ids if run_id in views]
        changed = bool(change.streams & set(self.run_ids))
        self.apply(compare_runs(present), missing, changed)

    def show_problem(self, message: str) -> None:
        self.show_error(message)

    def show_error(self, message: str) -> None:
        if self.is_attached:
            self.error = message
            self.update_status()

    def apply(self, comparison: dict[str, Any], missing: list[str], changed: bool) -> None:
        if not self.is_attached:  # the screen was closed while the worker ran
            return
        self.error = None
        self.present, self.missing = comparison["runs"], missing
        if comparison != self.comparison:
            self.comparison = comparison
            self.update_tables()
        self.update_status()
        if changed or not self._loaded:
            self._loaded = True
            self.update_charts()

    # --- rendering -------------------------------------------------------------------------

    def colour(self, run_id: str) -> str:
        return run_colour(self.run_ids, run_id)

    def number(self, run_id: str) -> int:
        """The run's number on the charts' phase markers (t2·1), its place in the compare."""
        return self.run_ids.index(run_id) + 1

    def run_header(self, run_id: str) -> Text:
        return Text(run_id, style=f"bold {rich_colour(self.colour(run_id))}")

    def update_status(self) -> None:
        text = Text()
        for run_id in self.present or self.run_ids:
            text.append(f"{self.number(run_id)} ━━ ", style=rich_colour(self.colour(run_id)))
            text.append(f"{run_id}  ")
        axis = "log" if self.log_x else "linear"
        smoothing = SMOOTHING_LEVELS[self.smoothing_index]
        view = "loss vs ‖θ‖" if self.lu_view else self.split
        text.append(f" x {axis} · EMA {smoothing} · showing {view}", style="dim")
        if self.missing:
            text.append(f"   not in the lab: {', '.join(self.missing)}", style="bold red")
        if self.error:
            text.append(f"   {self.error}", style="bold red")
        self.query_one("#compare-status", Static).update(text)

    def update_tables(self) -> None:
        comparison = self.comparison or {"runs": [], "config_diff": {}, "phases": {}}
        ids = comparison["runs"]
        diff = comparison["config_diff"]
        caption = self.query_one("#compare-diff-caption", Label)
        if len(ids) < 2:
            caption.update("config: needs two runs to compare")
        elif diff:
            caption.update(f"config: {len(diff)} field(s) differ")
        else:
            caption.update("config: identical")
        table = self.query_one("#compare-diff", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        table.add_column("field", key="field")
        for run_id in ids:
            table.add_column(self.run_header(run_id), key=run_id)
        for field, values in diff.items():
            table.add_row(field, *(config_cell(v) for v in values), key=field)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

        phases = self.query_one("#compare-phases", DataTable)
        cursor = phases.cursor_row
        phases.clear(columns=True)
        phases.add_column("", key="row")
        for run_id in ids:
            phases.add_column(self.run_header(run_id), key=run_id)
        for key, label in PHASE_ROWS:
            cells = [phase_cell(key, comparison["phases"][run_id].get(key)) for run_id in ids]
            phases.add_row(label, *cells, key=key)
        phases.move_cursor(row=min(cursor, phases.row_count - 1), animate=False)

    def series(self) -> dict[str, RunSeries]:
        return {run_id: self.state.tail(run_id).series for run_id in self.present}

    def extra_names(self) -> list[str]:
        """Metrics every compared run has, other than those the fixed charts show."""
        all_series = list(self.series().values())
        if not all_series:
            return []
        common = set(all_series[0].names()).intersection(*(s.names() for s in all_series[1:]))
        return sorted(common - SHOWN_ELSEWHERE)

    def curves(self, series: dict[str, RunSeries], metric: str) -> list[Curve]:
        return [
            Curve(run_id, s.get(metric), self.colour(run_id))
            for run_id, s in series.items()
            if len(s.get(metric))
        ]

    def markers(self) -> list[Marker]:
        """Each run's phase events t1..t4, numbered by run: t2·1 is run 1's t2."""
        snapshot = self.state.snapshot
        return [
            Marker(event.step, f"{event.kind}·{self.number(run_id)}")
            for run_id in self.present
            for event in snapshot.events_of(run_id)
            if event.kind in PHASE_MARKS
        ]

    def update_charts(self) -> None:
        series = self.series()
        smoothing = SMOOTHING_LEVELS[self.smoothing_index]
        extras = self.extra_names()
        if self.extra_metric not in extras:
            self.extra_metric = extras[0] if extras else None
        markers = self.markers()
        streams = tuple(s.version for s in series.values())
        version = (streams, tuple(markers), self.split, self.extra_metric)
        split = self.split
        charts: list[tuple[str, str, list[Curve]]] = [
            ("#cmp-accuracy", f"{split} accuracy", self.curves(series, f"{split}_acc")),
            ("#cmp-loss", f"{split} loss", self.curves(series, f"{split}_loss")),
            ("#cmp-norm", "weight norm ‖θ‖", self.curves(series, "weight_norm")),
        ]
        extra_title = f"{self.extra_metric or 'other metric'}  (m: next of {len(extras)})"
        extra_curves = self.curves(series, self.extra_metric) if self.extra_metric else []
        charts.append(("#cmp-extra", extra_title, extra_curves))
        for selector, title, curves in charts:
            chart = self.query_one(selector, MetricChart)
            chart.title = title
            chart.configure(log_x=self.log_x, smoothing=smoothing)
            chart.show(curves, markers, version)
        for selector, loss in (("#cmp-lu-train", "train_loss"), ("#cmp-lu-test", "test_loss")):
            curves = [
                Curve(run_id, loss_vs_norm(s, loss), self.colour(run_id))
                for run_id, s in series.items()
            ]
            chart = self.query_one(selector, TrajectoryChart)
            chart.configure(log_x=False, smoothing=smoothing)
            chart.show([c for c in curves if len(c.series)], [], version)

    # --- actions ---------------------------------------------------------------------------

    def action_toggle_split(self) -> None:
        self.split = SPLITS[(SPLITS.index(self.split) + 1) % len(SPLITS)]
        self.update_status()
        self.update_charts()

    def action_next_metric(self) -> None:
        extras = self.extra_names()
        if not extras:
            self.notify("These runs share no other metric yet")
            return
        index = extras.index(self.extra_metric) + 1 if self.extra_metric in extras else 0
        self.extra_metric = extras[index % len(extras)]
        self.update_charts()

    def action_toggle_lu(self) -> None:
        """Swap the accuracy and loss charts for train and test loss against ‖θ‖."""
        self.lu_view = not self.lu_view
        self.query_one("#cmp-accuracy").display = not self.lu_view
        self.query_one("#cmp-loss").display = not self.lu_view
        self.query_one("#cmp-lu-train").display = self.lu_view
        self.query_one("#cmp-lu-test").display = self.lu_view
        self.update_status()

    def action_export(self) -> None:
        run_ids = self.present or self.run_ids
        if run_ids:
            self.post_message(messages.ExportRuns(list(run_ids)))
