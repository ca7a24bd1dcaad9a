"""Unit tests of grokterm/tui/series.py: the chart data behind every TUI plot.

Pure Python, no Textual: downsampling, EMA, the log step axis and the incremental series.
"""

from __future__ import annotations

import math
import random
from array import array

import numpy as np
import pytest

from grokterm.lab import Lab, MetricStream
from grokterm.lab.stream import truncate_after
from grokterm.tui.series import (
    EMA_POINTS_PER_WIDTH,
    RunSeries,
    Series,
    StepSeries,
    bucket_edges,
    downsample,
    labels_fit,
    linear_ticks,
    log_ticks,
    nice_gap,
    positive_steps,
    smoothing_horizon,
    step_ema,
    step_label,
)

# --- downsample ----------------------------------------------------------------------------


def noisy(n: int, seed: int = 0) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    steps = [float(s) for s in range(1, n + 1)]
    return steps, [rng.random() for _ in steps]


@pytest.mark.parametrize("log_x", [False, True])
def test_downsample_is_a_no_op_for_short_input(log_x):
    steps, values = noisy(40)
    assert downsample(steps, values, buckets=20, log_x=log_x) == (steps, values)
    assert downsample(steps[:3], values[:3], buckets=100, log_x=log_x) == (steps[:3], values[:3])
    assert downsample([], [], buckets=10, log_x=log_x) == ([], [])


@pytest.mark.parametrize("log_x", [False, True])
@pytest.mark.parametrize("buckets", [10, 60, 240])
def test_downsample_output_is_bounded_and_in_step_order(log_x, buckets):
    steps, values = noisy(50_000)
    out_s, out_v = downsample(steps, values, buckets, log_x)
    assert len(out_s) == len(out_v)
    assert 0 < len(out_s) <= 2 * buckets + 2  # ~2 per bucket (+ first and last)
    assert out_s == sorted(out_s) and len(set(out_s)) == len(out_s)
    kept = dict(zip(steps, values, strict=True))
    assert all(kept[s] == v for s, v in zip(out_s, out_v, strict=True))  # real points only


@pytest.mark.parametrize("log_x", [False, True])
def test_downsample_keeps_global_extremes_and_a_planted_spike(log_x):
    steps, values = noisy(100_000, seed=3)
    spike_at, dip_at = 61_234, 7_777
    values[spike_at] = 50.0  # a slingshot: one step, 50x the rest
    values[dip_at] = -20.0
    out_s, out_v = downsample(steps, values, 80, log_x)
    assert max(out_v) == 50.0 and out_s[out_v.index(50.0)] == steps[spike_at]
    assert min(out_v) == -20.0 and out_s[out_v.index(-20.0)] == steps[dip_at]


@pytest.mark.parametrize("log_x", [False, True])
def test_downsample_keeps_first_and_last_points(log_x):
    """The curve must span the data: its first point and, for a live run, its latest one.

    Noisy values make the end points rarely their bucket's min or max, so a pure
    min/max-per-bucket downsample drops them and the chart stops short of the latest step.
    """
    steps, values = noisy(20_000, seed=7)
    out_s, out_v = downsample(steps, values, 60, log_x)
    assert (out_s[0], out_v[0]) == (steps[0], values[0])
    assert (out_s[-1], out_v[-1]) == (steps[-1], values[-1])


def test_downsample_keeps_monotone_end_points():
    steps = [float(s) for s in range(1, 10_001)]
    values = [1.0 - 1.0 / s for s in steps]
    out_s, out_v = downsample(steps, values, 50, log_x=True)
    assert out_s[0] == 1.0 and out_s[-1] == 10_000.0
    assert out_v[0] == 0.0 and out_v[-1] == values[-1]


def test_downsample_buckets_are_log_spaced_on_a_log_axis():
    steps, values = noisy(100_000, seed=11)
    log_s, _ = downsample(steps, values, 50, log_x=True)
    lin_s, _ = downsample(steps, values, 50, log_x=False)
    # Early steps get their share of a log axis: nearly every step below 10 survives...
    assert len([s for s in log_s if s < 10]) >= 8
    # ...while linear buckets of width 2,000 lump steps 1..2,000 into one bucket.
    assert len([s for s in lin_s if s < 2_000]) <= 3  # its min, its max (+ the first point)
    # Each full decade gets about the same number of points on the log axis.
    per_decade = [len([s for s in log_s if 10**d <= s < 10 ** (d + 1)]) for d in range(2, 5)]
    assert max(per_decade) <= 1.5 * min(per_decade), per_decade
    # And linear buckets are even in step: each fifth of the range holds ~1/5 of the points.
    fifths = [len([s for s in lin_s if k * 20_000 < s <= (k + 1) * 20_000]) for k in range(5)]
    assert max(fifths) - min(fifths) <= 4, fifths


def test_downsample_of_a_single_repeated_step():
    out = downsample([5.0] * 100, [float(i) for i in range(100)], 10, log_x=False)
    assert out[0] == [5.0] and len(out[1]) == 1


# --- ema -----------------------------------------------------------------------------------


def ramp(cadence: int, last: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    steps = np.arange(0, last + 1, cadence, dtype=float)
    return steps, steps * 0.001


@pytest.mark.parametrize("cadence", [1, 10, 50])
def test_step_ema_lags_by_the_horizon_on_every_cadence(cadence):
    """On a steady trend the smoothed curve is ``horizon`` steps behind, logged every step
    or every 50 (a per-point EMA of 0.97 lags 32 points: 32 steps or 1,600)."""
    steps, values = ramp(cadence)
    smooth = np.asarray(step_ema(steps, values, horizon=500.0))
    lag_in_steps = (values[-1] - smooth[-1]) / 0.001
    assert lag_in_steps == pytest.approx(500.0 * (1 - math.exp(-40)), rel=1e-6)
    later = steps >= 5_000  # past the start-up, at every point
    assert (steps[later] - smooth[later] / 0.001) == pytest.approx(500.0, rel=1e-3)


def test_step_ema_is_the_same_curve_on_every_cadence():
    """A noisy-free decaying loss smoothed at cadence 1 and 50 agrees at the common steps."""
    fine_steps = np.arange(1, 6_001, dtype=float)
    coarse = slice(49, None, 50)
    values = 1 / (1 + fine_steps / 300)
    fine = np.asarray(step_ema(fine_steps, values, 200.0))
    sparse = np.asarray(step_ema(fine_steps[coarse], values[coarse], 200.0))
    late = fine_steps[coarse] > 1_500  # once both have forgotten their first points
    assert sparse[late] == pytest.approx(fine[coarse][late], rel=2e-3)


def test_step_ema_keeps_constants_starts_at_the_first_value_and_spans_big_gaps():
    assert step_ema([1, 2, 3], [5.0, 5.0, 5.0], 10.0) == pytest.approx([5.0, 5.0, 5.0])
    assert step_ema([10, 20], [0.25, 1.0], 5.0)[0] == 0.25
    assert step_ema([1, 2], [1.0, 2.0], 0.0) == [1.0, 2.0]  # horizon 0: raw
    assert step_ema([], [], 3.0) == []
    # 10^6 horizons between two points: no overflow; a horizon behind the ramp between them.
    assert step_ema([0, 1e9], [0.0, 1.0], 1e3) == pytest.approx([0.0, 1.0 - 1e-6])
    far = step_ema(np.arange(100_000.0), np.ones(100_000), 1.0)  # many chunks
    assert np.all(np.isfinite(far)) and far == pytest.approx(np.ones(100_000))


def test_step_ema_on_a_log_axis_lags_a_fixed_share_of_the_step():
    """Smoothed in log10(step), the lag is the same factor of the step at 100 and at 10k."""
    steps = np.arange(1, 100_001, dtype=float)
    xs = np.log10(steps)
    smooth = np.asarray(step_ema(xs, xs, horizon=0.05))  # values = log10(step): a ramp in x
    for step in (100, 10_000):
        assert 10 ** smooth[step - 1] == pytest.approx(step / 10**0.05, rel=1e-3)


def test_smoothing_horizon_is_a_share_of_the_axis():
    assert smoothing_horizon(0.0, 6_000) == 0.0
    assert smoothing_horizon(0.9, 6_000) == pytest.approx(6_000 * 9 / EMA_POINTS_PER_WIDTH)
    assert smoothing_horizon(0.9, 4.0) == pytest.approx(4.0 * 9 / EMA_POINTS_PER_WIDTH)
    levels = [smoothing_horizon(s, 1.0) for s in (0.6, 0.9, 0.97)]
    assert levels == sorted(levels) and levels[-1] < 0.2


# --- log axis ------------------------------------------------------------------------------


def test_positive_steps_drops_step_zero_only():
    assert positive_steps([0, 0, 1, 2, 50], [9, 8, 1, 2, 3]) == ([1, 2, 50], [1, 2, 3])
    assert positive_steps([1, 2], [5, 6]) == ([1, 2], [5, 6])
    assert positive_steps([0], [1]) == ([], [])
    assert positive_steps([], []) == ([], [])


@pytest.mark.parametrize(
    ("step", "label"),
    [
        (1, "1"),
        (10, "10"),
        (100, "100"),
        (1_000, "1k"),
        (10_000, "10k"),
        (100_000, "100k"),
        (1_000_000, "1M"),
        (1_500, "1.5k"),
        (2_500_000, "2.5M"),
        (3e9, "3G"),
        (0, "0"),
    ],
)
def test_step_label(step, label):
    assert step_label(step) == label


@pytest.mark.parametrize(("step", "label"), [(999_999, "1M"), (999_700_000, "1G")])
def test_step_label_rounds_up_into_the_next_suffix(step, label):
    """999,999 rounds to 1000k at 3 digits, which must read 1M (not '1e+03k')."""
    assert step_label(step) == label


def test_log_ticks_stop_at_the_data_with_minor_ticks_labelled_where_they_fit():
    """A 6,000-step run: the axis ends at 5k (not the next decade) and, on a wide chart,
    1-2-5 ticks carry labels (2k, 5k)."""
    positions, labels = log_ticks(1, 6_000, columns=110)
    assert labels == ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1k", "2k", "5k"]
    assert positions == pytest.approx(
        [math.log10(float(label.replace("k", "e3"))) for label in labels]
    )
    assert max(positions) <= math.log10(6_000)


def test_log_ticks_keep_minor_ticks_unlabelled_on_a_narrow_chart():
    positions, labels = log_ticks(1, 10_000, columns=50)
    assert len(positions) == 13  # 1, 2, 5 per decade, and 10k
    assert [label for label in labels if label] == ["1", "10", "100", "1k", "10k"]
    assert labels[1:3] == ["", ""]  # 2 and 5: tick marks only
    _, labels = log_ticks(1, 1e7, columns=25)  # not even every decade fits
    shown = [label for label in labels if label]
    assert shown[0] == "1" and 1 < len(shown) < 8


@pytest.mark.parametrize("columns", [20, 50, 120])
@pytest.mark.parametrize(("lo", "hi"), [(1, 6_000), (10, 10_000), (3, 2_000_000)])
def test_log_ticks_labels_keep_apart(lo, hi, columns):
    positions, labels = log_ticks(lo, hi, columns)
    shown = [(p, label) for p, label in zip(positions, labels, strict=True) if label]
    assert len(shown) >= 2
    assert labels_fit(*zip(*shown, strict=True), math.log10(lo), math.log10(hi), columns)


def test_log_ticks_inside_one_decade_are_linear():
    positions, labels = log_ticks(300, 400, columns=60)
    assert labels[0] == "300" and labels[-1] == "400" and len(labels) >= 3
    steps = [10**p for p in positions]
    gaps = {round(b - a, 6) for a, b in zip(steps, steps[1:], strict=False)}
    assert len(gaps) == 1


def test_log_ticks_clamp_below_one_and_handle_a_single_point():
    assert log_ticks(0, 0) == ([0.0], ["1"])
    assert log_ticks(0.2, 10)[1] == ["1", "2", "5", "10"]
    positions, labels = log_ticks(1_000, 1_000)
    assert positions == [3.0] and labels == ["1k"]


def test_log_ticks_of_round_trip_steps():
    # The chart passes 10**log10(step), which is not always exactly the step.
    lo, hi = 10 ** math.log10(10), 10 ** math.log10(5_000)
    labels = ["10", "20", "50", "100", "200", "500", "1k", "2k", "5k"]
    assert log_ticks(lo, hi, columns=200)[1] == labels


@pytest.mark.parametrize(
    ("least", "gap"), [(1, 1), (1.1, 2), (2, 2), (2.01, 5), (7, 10), (127, 200), (0.03, 0.05)]
)
def test_nice_gap_is_1_2_or_5_times_a_power_of_ten(least, gap):
    assert nice_gap(least) == pytest.approx(gap)


def test_linear_ticks_are_round_and_even():
    """Not 0, 127, 254, ...: round steps at one gap, inside the range."""
    positions, labels = linear_ticks(0, 6_000, columns=40)
    assert labels == ["0", "1k", "2k", "3k", "4k", "5k", "6k"]
    assert positions == [0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000]
    positions, labels = linear_ticks(0, 6_000, columns=110)
    assert labels[:3] == ["0", "500", "1k"] and labels[-1] == "6k"
    positions, _ = linear_ticks(37, 9_130, columns=80)
    gaps = {b - a for a, b in zip(positions, positions[1:], strict=False)}
    assert len(gaps) == 1 and gaps.pop() in (500, 1000, 2000)
    assert 37 <= positions[0] and positions[-1] <= 9_130
    assert linear_ticks(0, 3, columns=60)[1] == ["0", "1", "2", "3"]  # whole steps only


@pytest.mark.parametrize("columns", [20, 40, 80, 200])
def test_linear_ticks_labels_keep_apart(columns):
    positions, labels = linear_ticks(0, 123_456, columns)
    assert len(positions) >= 2
    assert labels_fit(positions, labels, 0, 123_456, columns)


# --- RunSeries -----------------------------------------------------------------------------


def test_series_skips_non_finite_values():
    series = Series()
    for step, value in [(0, 1.0), (1, math.nan), (2, math.inf), (3, -math.inf), (4, 2.0)]:
        series.add(step, value)
    assert series.steps == [0, 4] and series.values == [1.0, 2.0] and len(series) == 2


def test_run_series_extend_groups_metrics_by_name():
    run = RunSeries()
    assert run.version == 0 and run.last_step == -1 and run.names() == []
    run.extend(
        [
            {"step": 0, "train_acc": 0.01, "test_acc": 0.01, "loss": 4.6},
            {"step": 1, "loss": 4.5},
            {"step": 2, "loss": 4.4, "train_acc": 0.2, "test_acc": 0.0},
        ]
    )
    assert run.version == 1 and run.last_step == 2
    assert run.names() == ["loss", "test_acc", "train_acc"]
    assert run.get("loss").steps == [0, 1, 2] and run.get("loss").values == [4.6, 4.5, 4.4]
    assert run.get("train_acc").steps == [0, 2]
    assert len(run.get("no_such_metric")) == 0


def test_run_series_skips_non_finite_values_and_bad_records():
    run = RunSeries()
    run.extend(
        [
            {"step": 10, "loss": math.nan, "train_acc": 0.5},
            {"step": 11, "loss": math.inf},
            {"step": 12, "loss": 1.0, "note": "text is not a metric", "extra": None},
            {"loss": 2.0},  # no step
            {"step": "13", "loss": 3.0},  # step is not an int
        ]
    )
    assert run.get("loss").steps == [12] and run.get("loss").values == [1.0]
    assert run.get("train_acc").values == [0.5]
    assert "note" not in run.names() and "extra" not in run.names()
    assert run.last_step == 12


def test_run_series_version_bumps_only_on_change_and_reset_clears():
    run = RunSeries()
    run.extend([])
    assert run.version == 0
    run.extend([{"step": 1, "loss": 1.0}])
    run.extend([{"step": 2, "loss": 0.5}])
    assert run.version == 2
    run.reset()
    assert run.version == 3 and run.names() == [] and run.last_step == -1
    run.extend([{"step": 1, "loss": 0.9}])
    assert run.version == 4 and run.get("loss").steps == [1]


# --- StepSeries: a per-step column ---------------------------------------------------------


def column_of(values: list[float], block: int = 4096) -> StepSeries:
    column = StepSeries(block)
    for start in range(0, len(values), 1000):  # in slices, as a tail delivers them
        column.extend(array("d", values[start : start + 1000]))
    return column


def loss_like(n: int, seed: int = 0) -> list[float]:
    """A loss per step with holes (NaN), step 0 empty, zeros and infinities sprinkled in."""
    rng = random.Random(seed)
    values = [rng.lognormvariate(0, 2) for _ in range(n)]
    values[0] = math.nan
    for i in rng.sample(range(1, n), n // 50):
        values[i] = rng.choice([math.nan, 0.0, math.inf, -1.0])
    return values


def brute_extremes(values, start, end, log_y):
    """Python's min and max over one bucket, of the values a chart can show."""
    shown = [v for v in values[start:end] if math.isfinite(v) and (v > 0 or not log_y)]
    return (min(shown), max(shown)) if shown else None


@pytest.mark.parametrize("log_x", [False, True])
@pytest.mark.parametrize("log_y", [False, True])
@pytest.mark.parametrize("n,buckets", [(20_000, 100), (5_000, 37), (150, 100)])
@pytest.mark.parametrize("block", [4096, 7, 64])  # buckets from raw values, from blocks
def test_step_column_buckets_hold_the_brute_force_min_and_max(log_x, log_y, n, buckets, block):
    values = loss_like(n)
    steps, ys = column_of(values, block).chart_points(buckets, log_x, log_y)
    assert steps == sorted(set(steps))
    assert all(ys[i] == values[int(step)] for i, step in enumerate(steps))
    shown = [s for s in range(1 if log_x else 0, n) if math.isfinite(values[s])]
    shown = [s for s in shown if values[s] > 0 or not log_y]
    assert steps[0] == shown[0] and steps[-1] == shown[-1]
    if shown[-1] - shown[0] < 2 * buckets:
        assert steps == shown
        return
    edges = bucket_edges(shown[0], shown[-1], buckets, log_x)
    assert len(steps) <= 2 * buckets + 2
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        inside = [y for s, y in zip(steps, ys, strict=True) if start <= s < end]
        expected = brute_extremes(values, start, end, log_y)
        assert (min(inside), max(inside)) == expected if expected else not inside


@pytest.mark.parametrize("log_x", [False, True])
@pytest.mark.parametrize("block", [4096, 16])
def test_step_column_draws_the_points_downsample_draws(log_x, block):
    values = [round(v, 2) for v in noisy(30_000, seed=3)[1]]  # rounded: many ties
    values[0] = math.nan  # no loss at step 0
    steps, ys = column_of(values, block).chart_points(120, log_x, log_y=False)
    expected = downsample(list(range(1, 30_000)), values[1:], 120, log_x)
    assert (steps, ys) == expected


def test_bucket_edges_cover_the_range_in_order():
    for log_x in (False, True):
        edges = bucket_edges(1, 10**7, 200, log_x)
        assert edges[0] == 1 and edges[-1] == 10**7 + 1
        assert all(np.diff(edges) >= 0) and len(edges) == 201


def test_step_column_counts_values_and_grows_while_read():
    column = StepSeries()
    assert len(column) == 0 and column.chart_points(10, True, True) == ([], [])
    column.extend(array("d", [math.nan, 1.0, math.inf, 0.5]))
    column.extend(array("d", [0.25]))
    assert len(column) == 3 and column.size == 5
    assert column.chart_points(10, log_x=True, log_y=True) == ([1.0, 3.0, 4.0], [1.0, 0.5, 0.25])


def test_run_series_prefers_the_column_to_the_json_losses():
    run = RunSeries()
    run.extend([{"step": 0, "train_acc": 0.1}, {"step": 10, "loss": 0.5, "train_acc": 0.2}])
    assert run.get("loss").steps == [10]
    run.extend_column("loss", array("d", [math.nan, *[1 / s for s in range(1, 21)]]))
    assert isinstance(run.get("loss"), StepSeries) and len(run.get("loss")) == 20
    assert run.last_step == 20 and run.names() == ["loss", "train_acc"]
    version = run.version
    run.reset()  # the JSON lines were rewritten: the column stays
    assert len(run.get("loss")) == 20 and run.version > version
    run.reset_column("loss")
    assert run.names() == [] and len(run.get("loss")) == 0


def test_run_series_step_span_covers_every_metric_for_one_shared_x_axis():
    """The per-step loss starts at step 1, the probes at 0 and 10: all the run's charts get
    one range (from the first step > 0 on a log axis), so their event lines line up."""
    run = RunSeries()
    assert run.step_span(log_x=True) is None
    run.extend([{"step": 0, "train_acc": 0.1}, {"step": 10, "train_acc": 0.2}])
    run.extend([{"step": 6_000, "train_acc": 1.0}])
    assert run.step_span(log_x=False) == (0, 6_000)
    assert run.step_span(log_x=True) == (10, 6_000)
    run.extend_column("loss", array("d", [math.nan, *[1 / s for s in range(1, 6_001)]]))
    assert run.step_span(log_x=True) == (1, 6_000)
    run.extend_column("loss", array("d", [0.5] * 100))  # the loss runs ahead of the probes
    assert run.step_span(log_x=False) == (0, 6_100)


def test_run_tail_reads_the_column_only_when_asked_and_follows_a_resume(tmp_path):
    from grokterm.tui.state import LabState

    lab = Lab(tmp_path / "lab")
    run_id = lab.create_run("plain", None, {"schedule": {"steps": 100}}, []).id
    stream = lab.run_dir(run_id) / "metrics.jsonl"
    with MetricStream(stream) as writer:
        for step in range(1, 101):
            probe = {"acc": step / 100} if step % 10 == 0 else {}
            writer.append({"step": step, "loss": 1 / step, **probe})
    tail = LabState(lab).tail(run_id)

    assert tail.poll() and "loss" in tail.series.names()  # the JSON losses, at probe steps
    assert len(tail.series.get("loss")) == 10
    assert tail.poll(with_column=True) and len(tail.series.get("loss")) == 100
    assert not tail.poll(with_column=True)

    truncate_after(stream, 40)  # a resume
    with MetricStream(stream) as writer:
        for step in range(41, 61):
            writer.append({"step": step, "loss": 2 / step})
    assert tail.poll(with_column=True)
    loss = tail.series.get("loss")
    assert loss.size == 61 and len(loss) == 60
    assert loss.chart_points(200, False, False)[1][-1] == pytest.approx(2 / 60)
    tail.drop_column()
    assert tail.series.get("loss").steps == [10, 20, 30, 40]  # the JSON losses kept
