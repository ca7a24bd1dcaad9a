"""Chart data for the TUI, kept cheap to redraw: growing columns, downsampling, EMA, log ticks.

No Textual and no torch (numpy only), so it is unit-tested on its own and benchmarked.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Series:
    """One metric's points in step order (the stream only ever appends later steps)."""

    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: float, value: float) -> None:
        if math.isfinite(value):
            self.steps.append(step)
            self.values.append(value)

    def __len__(self) -> int:
        return len(self.steps)

    def chart_points(self, buckets: int, log_x: bool, log_y: bool) -> tuple[list, list]:
        """The points a chart of ``buckets`` columns draws (see downsample); only steps > 0
        on a log x axis and values > 0 on a log y axis."""
        n = min(len(self.steps), len(self.values))  # a poll thread may be appending
        steps = np.asarray(self.steps[:n], dtype=float)
        values = np.asarray(self.values[:n], dtype=float)
        keep = np.ones(n, dtype=bool)
        if log_x:
            keep &= steps > 0
        if log_y:
            keep &= values > 0
        return downsample(steps[keep], values[keep], buckets, log_x)


class StepSeries:
    """A metric recorded at every step (the training loss), held as one float64 array whose
    index is the step, NaN where a step has none, plus the steps of each block's extremes.
    A chart's bucket takes its extremes from the blocks it covers and the raw values at its
    two ends: no Python object per step, and a redraw of 10^7 steps reads a few thousand
    values. (float32 would halve the 80 MB of 10^7 steps, but its ties on a flat loss move
    the points a chart draws.)"""

    def __init__(self, block: int = 4096) -> None:
        self.block = block
        self._values = np.empty(0, dtype=np.float64)
        self.size = 0  # steps held: 0 .. size-1
        self._count = 0
        # Per complete block, the step of its least value, least positive value (for a log
        # axis) and greatest value; -1 for a block without one.
        self._lows = self._positive_lows = self._highs = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return self._count

    def reserve(self, steps: int) -> None:
        if steps > len(self._values):
            grown = np.empty(max(steps, len(self._values) * 5 // 4), dtype=np.float64)
            grown[: self.size] = self._values[: self.size]
            self._values = grown

    def extend(self, values: Sequence[float]) -> None:
        """Append the values of the next steps (a buffer of float64, such as array('d'))."""
        new = np.frombuffer(values, dtype=np.float64)
        start, end = self.size, self.size + len(new)
        self.reserve(end)
        block = self._values[start:end]
        block[:] = new
        block[~np.isfinite(block)] = np.nan  # inf too: charts skip non-finite values
        self._count += int(np.count_nonzero(~np.isnan(block)))
        self._summarise(end)
        self.size = end  # last: a reader on the UI thread sees only filled steps

    def _summarise(self, end: int) -> None:
        done, complete = len(self._highs), end // self.block
        if complete <= done:
            return
        first = done * self.block
        rows = self._values[first : complete * self.block].reshape(-1, self.block)
        lows, highs = _block_extremes(rows, first, False, False), _block_extremes(rows, first, True)
        self._lows = np.concatenate((self._lows, lows))
        positive_lows = _block_extremes(rows, first, False, True)
        self._positive_lows = np.concatenate((self._positive_lows, positive_lows))
        self._highs = np.concatenate((self._highs, highs))

    def chart_points(self, buckets: int, log_x: bool, log_y: bool) -> tuple[list, list]:
        """Like Series.chart_points: each bucket's min and max (at their steps), and the
        first and last points."""
        size = self.size  # before the array: a resize keeps every step below size
        values = self._values[:size]
        lo = _first_usable(values, 1 if log_x else 0, log_y)
        if lo is None:
            return [], []
        hi = _last_usable(values, log_y)
        if hi - lo < 2 * buckets or buckets < 1:
            index = lo + np.flatnonzero(_usable(values[lo : hi + 1], log_y))
        else:
            edges = bucket_edges(lo, hi, buckets, log_x)
            buckets_at = zip(edges[:-1], edges[1:], strict=True)
            extremes = [self._extremes(values, start, end, log_y) for start, end in buckets_at]
            index = np.unique(np.concatenate([[lo, hi], *extremes]).astype(np.int64))
        return index.astype(float).tolist(), values[index].tolist()

    def _extremes(self, values: np.ndarray, start: int, end: int, log_y: bool) -> list[int]:
        """Steps of the least and greatest usable value in start..end-1: from the summaries
        of the blocks inside, and the raw values of the partial blocks at either end."""
        first_block = -(-start // self.block)
        last_block = min(end // self.block, len(self._highs))  # summarised blocks only
        if first_block >= last_block:
            return _extremes(values, start, end, log_y)
        lows = (self._positive_lows if log_y else self._lows)[first_block:last_block]
        highs = self._highs[first_block:last_block]
        inside = [lows[lows >= 0], highs[highs >= 0]]
        if log_y:  # a block's greatest value is not drawn on a log axis if it is <= 0
            inside[1] = inside[1][values[inside[1]] > 0]
        ends = (
            _extremes(values, start, first_block * self.block, log_y),
            _extremes(values, last_block * self.block, end, log_y),
        )
        # In step order, so that a tie goes to the earliest step, as argmin/argmax do.
        lows = np.concatenate([ends[0][:1], inside[0], ends[1][:1]]).astype(np.int64)
        highs = np.concatenate([ends[0][1:], inside[1], ends[1][1:]]).astype(np.int64)
        if not lows.size:
            return []
        return [int(lows[values[lows].argmin()]), int(highs[values[highs].argmax()])]


def _block_extremes(
    rows: np.ndarray, first: int, greatest: bool, positive: bool = False
) -> np.ndarray:
    """Per row (a block of steps, the first starting at step ``first``), the step of its
    least (greatest) usable value, or -1 when it has none."""
    usable = _usable(rows, positive)
    filled = np.where(usable, rows, -np.inf if greatest else np.inf)
    columns = filled.argmax(axis=1) if greatest else filled.argmin(axis=1)
    steps = first + np.arange(len(rows)) * rows.shape[1] + columns
    return np.where(usable.any(axis=1), steps, -1)


def bucket_edges(lo: int, hi: int, buckets: int, log_x: bool) -> np.ndarray:
    """The first step of each bucket over steps lo..hi, even in step or log step, then hi+1
    (a bucket holds the steps from its edge up to the next)."""
    fractions = np.arange(1, buckets) / buckets
    if log_x:
        bounds = 10 ** (math.log10(lo) + (math.log10(hi) - math.log10(lo)) * fractions)
    else:
        bounds = lo + (hi - lo) * fractions
    inner = np.clip(np.floor(bounds).astype(np.int64) + 1, lo, hi + 1)
    return np.concatenate(([lo], inner, [hi + 1]))


def _usable(values: np.ndarray, log_y: bool) -> np.ndarray:
    return values > 0 if log_y else ~np.isnan(values)


def _first_usable(values: np.ndarray, start: int, log_y: bool, window: int = 1 << 16):
    for offset in range(start, len(values), window):
        found = np.flatnonzero(_usable(values[offset : offset + window], log_y))
        if found.size:
            return offset + int(found[0])
    return None


def _last_usable(values: np.ndarray, log_y: bool, window: int = 1 << 16) -> int:
    for end in range(len(values), 0, -window):
        found = np.flatnonzero(_usable(values[max(0, end - window) : end], log_y))
        if found.size:
            return max(0, end - window) + int(found[-1])
    raise ValueError("no usable value")  # callers check _first_usable first


def _extremes(values: np.ndarray, start: int, end: int, log_y: bool) -> list[int]:
    """Steps of the least and greatest usable value in values[start:end]."""
    chunk = values[start:end]
    if not chunk.size:
        return []
    low, high = int(chunk.argmin()), int(chunk.argmax())
    # argmin/argmax land on a NaN if there is one; a log axis cannot show values <= 0.
    if np.isnan(chunk[low]) or np.isnan(chunk[high]) or (log_y and chunk[low] <= 0):
        usable = np.flatnonzero(_usable(chunk, log_y))
        if not usable.size:
            return []
        low = int(usable[chunk[usable].argmin()])
        high = int(usable[chunk[usable].argmax()])
    return [start + low, start + high]


class RunSeries:
    """All metrics of one run, fed incrementally from its metrics.jsonl records and, for the
    per-step loss, from its column."""

    def __init__(self) -> None:
        self.metrics: dict[str, Series] = {}
        self.columns: dict[str, StepSeries] = {}
        self.last_step = -1
        self.version = 0  # bumps on every change, so views redraw only when needed

    def extend(self, records: Sequence[dict]) -> None:
        for record in records:
            step = record.get("step")
            if not isinstance(step, int):
                continue
            for name, value in record.items():
                if name != "step" and isinstance(value, int | float):
                    self.metrics.setdefault(name, Series()).add(step, float(value))
            self.last_step = max(self.last_step, step)
        if records:
            self.version += 1

    def extend_column(self, name: str, values: Sequence[float], steps_on_disk: int = 0) -> None:
        column = self.columns.setdefault(name, StepSeries())
        column.reserve(steps_on_disk)
        column.extend(values)
        self.last_step = max(self.last_step, column.size - 1)
        self.version += 1

    def reset(self) -> None:
        """Forget the metrics of the JSON records (the columns have their own reset)."""
        self.metrics.clear()
        self.last_step = max((column.size - 1 for column in self.columns.values()), default=-1)
        self.version += 1

    def reset_column(self, name: str) -> None:
        if self.columns.pop(name, None) is not None:
            self.version += 1

    def step_span(self, log_x: bool) -> tuple[float, float] | None:
        """The steps from the first to the last point of any metric (from the first step > 0
        for a log axis): one x range for all the run's charts, so their event lines line up."""
        firsts, lasts = [], []
        for name in self.names():
            steps = _drawn_steps(self.get(name), log_x)
            if steps is not None:
                firsts.append(steps[0])
                lasts.append(steps[1])
        if not firsts:
            return None
        return min(firsts), max(lasts)

    def names(self) -> list[str]:
        return sorted(set(self.metrics) | {name for name, c in self.columns.items() if len(c)})

    def get(self, name: str) -> Series | StepSeries:
        """The metric's points; a per-step column, once read, wins over the same metric's
        values in the JSON records (those are the column's values at probe steps)."""
        column = self.columns.get(name)
        if column is not None and len(column):
            return column
        return self.metrics.get(name) or Series()


def _drawn_steps(series: Series | StepSeries, log_x: bool) -> tuple[float, float] | None:
    """The first and last step a chart draws of the series (values of any sign)."""
    if isinstance(series, StepSeries):
        values = series._values[: series.size]
        first = _first_usable(values, 1 if log_x else 0, False)
        return None if first is None else (float(first), float(_last_usable(values, False)))
    n = min(len(series.steps), len(series.values))
    start = bisect.bisect_right(series.steps, 0, 0, n) if log_x else 0
    return (float(series.steps[start]), float(series.steps[n - 1])) if start < n else None


def downsample(
    steps: Sequence[float], values: Sequence[float], buckets: int, log_x: bool
) -> tuple[list[float], list[float]]:
    """At most ~2 points per bucket (min and max, in step order) plus the first and last
    point, with buckets even in x or in log x.

    Keeping each bucket's extremes preserves spikes (slingshots) that averaging would hide.
    """
    xs_steps, ys = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    n = len(xs_steps)
    if n <= 2 * buckets or buckets < 1:
        return xs_steps.tolist(), ys.tolist()
    xs = np.log10(xs_steps) if log_x else xs_steps
    lo, hi = xs[0], xs[-1]
    if hi <= lo:
        return [float(xs_steps[-1])], [float(ys[-1])]
    bounds = np.searchsorted(xs, lo + (hi - lo) * np.arange(1, buckets) / buckets, "right")
    keep = {0, n - 1}
    starts, ends = np.concatenate(([0], bounds)), np.concatenate((bounds, [n]))
    for start, end in zip(starts, ends, strict=True):
        if end > start:
            chunk = ys[start:end]
            keep.update((start + int(chunk.argmin()), start + int(chunk.argmax())))
    index = np.fromiter(sorted(keep), dtype=np.int64)
    return xs_steps[index].tolist(), ys[index].tolist()


def _x(step: float, log_x: bool) -> float:
    return math.log10(step) if log_x else step


# A smoothing strength s smooths like a per-point EMA of strength s over this many points
# spread evenly across the chart's width: 0.6 -> 0.5% of the width, 0.9 -> 3%, 0.97 -> 11%.
EMA_POINTS_PER_WIDTH = 300
_MAX_EXPONENT = 500.0  # exp(500) ~ 1e217: chunks of the recurrence stay inside float64


def smoothing_horizon(strength: float, span: float) -> float:
    """The EMA time constant, in x units (steps, or decades of steps on a log axis), of a
    smoothing strength on a chart whose x axis spans ``span``; 0 for no smoothing."""
    if strength <= 0 or span <= 0:
        return 0.0
    return span * strength / (1 - strength) / EMA_POINTS_PER_WIDTH


def step_ema(xs: Sequence[float], values: Sequence[float], horizon: float) -> list[float]:
    """EMA over x distance: a value's weight decays as exp(-Δx / horizon), with the curve
    taken as linear between points (Eckner's EMA for uneven time series). Behind a steady
    trend it lags by ``horizon`` whatever the spacing of the points, so a run logged every
    step and one logged every 50 steps smooth alike. Starts at the first value (no bias)."""
    x, v = np.asarray(xs, dtype=float), np.asarray(values, dtype=float)
    if horizon <= 0 or len(v) < 2:
        return v.tolist()
    alpha = np.abs(np.diff(x)) / horizon  # x in order; a path (x not monotone): its length
    decay = np.exp(-alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = np.where(alpha > 1e-12, -np.expm1(-alpha) / alpha, 1.0)  # (1 - decay) / alpha
    # out[i+1] = decay[i] * out[i] + gain[i], solved a chunk at a time in closed form.
    gain = (ramp - decay) * v[:-1] + (1 - ramp) * v[1:]
    exponent = np.concatenate(([0.0], np.cumsum(np.minimum(alpha, _MAX_EXPONENT))))
    out = np.empty_like(v)
    out[0] = v[0]
    start = 0
    while start < len(v) - 1:
        end = max(
            start + 2, int(np.searchsorted(exponent, exponent[start] + _MAX_EXPONENT, "right"))
        )
        grown = np.exp(exponent[start + 1 : end] - exponent[start])
        total = out[start] + np.cumsum(gain[start : end - 1] * grown)
        out[start + 1 : end] = total / grown
        start = end - 1
    return out.tolist()


def positive_steps(steps: Sequence[float], values: Sequence[float]) -> tuple[list, list]:
    """Points with step > 0, for a log step axis (step 0, the initial probe, has no log)."""
    start = bisect.bisect_right(steps, 0)
    return list(steps[start:]), list(values[start:])


def log_ticks(lo: float, hi: float, columns: int = 80) -> tuple[list[float], list[str]]:
    """Ticks for a log step axis over the steps lo..hi drawn ``columns`` wide: positions in
    log10(step) at 1, 2 and 5 x 10^k, labelled (1, 2, 5, 10, ..., 2k, 5k) where the labels fit,
    else only the decades (every n-th if need be) and the rest as bare minor ticks; linear
    ticks when the range holds fewer than two decades' worth of those."""
    lo, hi = max(lo, 1.0), max(hi, 1.0)
    steps = _log_steps(lo, hi, (1, 2, 5))
    if len(steps) < 2:
        positions, labels = linear_ticks(lo, hi, columns)
        kept = [(p, label) for p, label in zip(positions, labels, strict=True) if p > 0]
        return [math.log10(p) for p, _ in kept], [label for _, label in kept]
    positions = [math.log10(step) for step in steps]
    labels = [step_label(step) for step in steps]
    span = (math.log10(hi), math.log10(lo))
    if labels_fit(positions, labels, span[1], span[0], columns):
        return positions, labels
    decades = [i for i, step in enumerate(steps) if _is_decade(step)]
    stride = 1
    while stride < len(decades) and not labels_fit(
        [positions[i] for i in decades[::stride]],
        [labels[i] for i in decades[::stride]],
        span[1],
        span[0],
        columns,
    ):
        stride += 1
    shown = set(decades[::stride])
    return positions, [label if i in shown else "" for i, label in enumerate(labels)]


def _is_decade(step: float) -> bool:
    return math.isclose(10 ** round(math.log10(step)), step)


def _log_steps(lo: float, hi: float, mantissas: tuple[int, ...]) -> list[float]:
    # A little slack: log10 and back turns 10 into 9.999999999999998.
    low, high = lo * (1 - 1e-9), hi * (1 + 1e-9)
    decades = range(math.floor(math.log10(low)), math.floor(math.log10(high)) + 1)
    steps = [m * 10.0**k for k in decades for m in mantissas]
    return [step for step in steps if low <= step <= high]


def labels_fit(
    positions: Sequence[float], labels: Sequence[str], lo: float, hi: float, columns: int
) -> bool:
    """Whether labels centred on their positions, on an axis lo..hi drawn ``columns`` wide,
    keep two spaces between neighbours."""
    if hi <= lo:
        return len(positions) < 2
    per_unit = columns / (hi - lo)
    pairs = zip(positions, positions[1:], labels, labels[1:], strict=False)
    return all((b - a) * per_unit >= (len(la) + len(lb)) / 2 + 2 for a, b, la, lb in pairs)


def linear_ticks(
    lo: float, hi: float, columns: int = 80, least_gap: float = 1.0
) -> tuple[list[float], list[str]]:
    """Evenly spaced ticks inside lo..hi at the smallest round gap (1, 2 or 5 x 10^k, at
    least ``least_gap``) whose step labels fit on an axis ``columns`` wide."""
    if hi <= lo:
        return [lo], [step_label(lo)]
    gap = nice_gap((hi - lo) / max(columns // 4, 1), least_gap)
    while True:
        first = math.ceil(lo / gap - 1e-9)
        positions = [k * gap for k in range(first, math.floor(hi / gap + 1e-9) + 1)]
        labels = [step_label(p) for p in positions]
        if len(positions) < 3 or labels_fit(positions, labels, lo, hi, columns):
            return positions, labels
        gap = nice_gap(gap * 1.5)


def nice_gap(least: float, floor: float = 0.0) -> float:
    """The smallest 1, 2 or 5 x 10^k that is at least ``least`` (and ``floor``)."""
    least = max(least, floor, 1e-12)
    power = 10.0 ** math.floor(math.log10(least))
    for mantissa in (1, 2, 5):
        if mantissa * power >= least * (1 - 1e-9):
            return mantissa * power
    return 10 * power


def step_label(step: float) -> str:
    step = float(f"{step:.3g}")  # round first, so 999,999 is "1M", not "1e+03k"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if step >= scale:
            text = f"{step / scale:.3g}"
            return f"{text}{suffix}"
    return f"{step:.0f}"
