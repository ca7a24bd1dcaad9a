"""A live run's speed for the monitor: steps per second smoothed over time, and the ETA.

A run does not train at an even pace: probes (HTSR, traps) pause the steps for seconds, and
a poll may see a heartbeat late. The rate between two looks swings with that (an ETA that
jumps between 3 and 44 minutes), so the monitor shows an exponential moving average over
time instead: each stretch between two samples weighs by its length, so the average is the
run's throughput over about the last TIME_CONSTANT seconds. No Textual here.
"""

from __future__ import annotations

import math

TIME_CONSTANT = 120.0  # seconds: longer than the pause of a probe, short enough to follow


class StepRate:
    """Feed (time, step) samples in time order; `rate` is the smoothed steps per second, or
    None until two samples are apart in time."""

    def __init__(self, time_constant: float = TIME_CONSTANT) -> None:
        self.time_constant = time_constant
        self._last: tuple[float, int] | None = None
        self._sum = 0.0  # decayed sum of (weight x rate) over the stretches seen
        self._weight = 0.0  # decayed sum of weights: dividing by it removes the start's bias

    @property
    def rate(self) -> float | None:
        return self._sum / self._weight if self._weight else None

    def add(self, when: float, step: int) -> None:
        last = self._last
        if last is None or step < last[1]:  # the first sample, or a resume from an earlier step
            self.reset()
            self._last = (when, step)
            return
        elapsed = when - last[0]
        if elapsed <= 0:
            return
        decay = math.exp(-elapsed / self.time_constant)
        self._sum = decay * self._sum + (1 - decay) * (step - last[1]) / elapsed
        self._weight = decay * self._weight + (1 - decay)
        self._last = (when, step)

    def reset(self) -> None:
        self._last, self._sum, self._weight = None, 0.0, 0.0


def eta_text(step: int, total: int | None, rate: float | None) -> str:
    """H:MM:SS until `total` at `rate`; "–" when there is no rate or nothing left."""
    if not rate or not total or step >= total:
        return "–"
    return duration_text((total - step) / rate)


def duration_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
