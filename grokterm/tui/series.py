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


class RunSeries:
    """All metrics of one run, fed incrementally from its metrics.jsonl records."""

    def __init__(self) -> None:
        self.metrics: dict[str, Series] = {}
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

    def reset(self) -> None:
        self.metrics.clear()
        self.last_step = -1
        self.version += 1

    def names(self) -> list[str]:
        return sorted(self.metrics)

    def get(self, name: str) -> Series:
        return self.metrics.get(name) or Series()


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


def ema(values: Sequence[float], strength: float) -> list[float]:
    """Exponential moving average with debiasing; strength 0 = raw, 0.99 = very smooth."""
    if strength <= 0:
        return list(values)
    out, avg, weight = [], 0.0, 0.0
    for value in values:
        avg = strength * avg + (1 - strength) * value
        weight = strength * weight + (1 - strength)
        out.append(avg / weight)
    return out


def positive_steps(steps: Sequence[float], values: Sequence[float]) -> tuple[list, list]:
    """Points with step > 0, for a log step axis (step 0, the initial probe, has no log)."""
    start = bisect.bisect_right(steps, 0)
    return list(steps[start:]), list(values[start:])


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions in log10(step) with labels 1, 10, 100, 1k, ... between lo and hi steps."""
    lo, hi = max(lo, 1.0), max(hi, 1.0)
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    positions = [float(p) for p in range(first, last + 1)]
    return positions, [step_label(10**p) for p in range(first, last + 1)]


def step_label(step: float) -> str:
    step = float(f"{step:.3g}")  # round first, so 999,999 is "1M", not "1e+03k"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if step >= scale:
            text = f"{step / scale:.3g}"
            return f"{text}{suffix}"
    return f"{step:.0f}"
