"""Spectral probes of the training loss: Hjorth parameters, DFT energy, a grokking forecast.

Following Notsawo et al. 2023 ("Predicting grokking long before it happens"): the per-step
training loss over a window is treated as a signal. Its Hjorth parameters are

* activity   = Var(x)                          (the signal power),
* mobility   = √(Var(Δx) / Var(x))             (a mean frequency),
* complexity = mobility(Δx) / mobility(x)      (how far from a pure tone; 1 for a sinusoid),

and its DFT energy is the energy of the non-DC components, Σ_{k≥1} |X_k|² / N. By Parseval
that total equals Σ (x − x̄)² = N · activity, so the informative extra is the *low-frequency*
part: the energy of the lowest ``low_fraction`` of the frequencies (Notsawo's "amplitude of
the low-frequency components").

**The signal is log(loss), not the loss.** Notsawo analyse the loss itself. Here the loss spans
four or more orders of magnitude within a run (ln p ≈ 4.6 at init, 1e-4 after memorisation), so
on the raw loss any window is dominated by its largest values: a window after memorisation
has an activity of ~1e-8 whatever happens in it, and in the first N steps the initial drop
swamps every later oscillation. On log(loss) a relative change of the same size counts the
same at any loss level, and a constant factor on the loss (a different loss scale or modulus)
is a DC offset, which none of the statistics sees. The price: the numbers are not comparable
with the paper's. Losses are floored at ``LOSS_FLOOR`` before the log (a float32 loss can be
exactly 0). Both windows (live and early) use the same signal.

The grokking forecast (:func:`grokking_forecast`) is this module's own heuristic, not
Notsawo's rule: their exact statistic, window length and threshold could not be checked
(grokterm research notes, papers.md §5). See :data:`FORECAST_RULE`.

numpy only; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

LOSS_FLOOR = 1e-30  # losses at or below this are taken as this before the log
MIN_VALUES = 8  # a window reports nothing until it holds this many values (or is full)
LOW_FRACTION = 0.1  # "low frequencies": the lowest 10% of the non-DC frequencies up to Nyquist
FORECAST_THRESHOLD = 0.1  # default threshold of the forecast's oscillation statistic

FORECAST_RULE = (
    "heuristic (grokterm's own, not Notsawo et al.'s unverified rule): over the first N steps "
    "of log(loss), oscillation = low-frequency DFT energy of the loss's rises above its running "
    "minimum / total non-DC DFT energy; forecast grokking when oscillation >= threshold"
)

__all__ = [
    "FORECAST_RULE",
    "EarlyWindow",
    "SpectralWindow",
    "dft_energy",
    "grokking_forecast",
    "hjorth",
    "loss_signal",
    "oscillation",
    "spectral_features",
]


# --- the statistics ------------------------------------------------------------------------


def _variance(x: np.ndarray) -> float:
    """Population variance; exactly 0.0 for a constant signal (no rounding residue)."""
    if x.size == 0:
        return math.nan
    if np.ptp(x) == 0:
        return 0.0
    return float(np.mean((x - x.mean()) ** 2))


def _mobility(x: np.ndarray) -> float:
    """√(Var(Δx)/Var(x)); 0 for a constant signal (it does not move), NaN below 2 samples."""
    if x.size < 2:
        return math.nan
    var = _variance(x)
    if var == 0.0:
        return 0.0
    return math.sqrt(_variance(np.diff(x)) / var)


def hjorth(x) -> tuple[float, float, float]:
    """Hjorth (activity, mobility, complexity) of a 1-D signal with unit sampling.

    A constant signal gives (0, 0, NaN): no power, no movement, and no defined shape. A signal
    whose first difference is constant (a linear ramp) has mobility 0 and complexity NaN.
    Fewer than 3 samples give NaN where a difference is missing. Never warns.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size and not np.all(np.isfinite(x)):
        return math.nan, math.nan, math.nan
    activity = _variance(x)
    mobility = _mobility(x)
    if x.size < 3 or not mobility > 0.0:
        return activity, mobility, math.nan
    return activity, mobility, _mobility(np.diff(x)) / mobility


def dft_energy(x, low_fraction: float | None = None) -> float:
    """Energy of the non-DC DFT components, Σ_{k≥1} |X_k|² / N (= Σ (x − x̄)² by Parseval).

    With ``low_fraction`` in (0, 1], only the lowest frequencies count: the bins k = 1..m of
    the one-sided spectrum with m = ⌈low_fraction · ⌊N/2⌋⌉ (at least 1), each with its mirror
    bin N − k, so that ``low_fraction=1`` gives the total.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        return math.nan if n == 0 else 0.0
    if not np.all(np.isfinite(x)):
        return math.nan
    if np.ptp(x) == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    weight = np.full(spectrum.size, 2.0)  # each bin 0 < k < N/2 stands for k and N − k
    weight[0] = 0.0  # DC
    if n % 2 == 0:
        weight[-1] = 1.0  # Nyquist has no mirror
    energy = weight * spectrum / n
    if low_fraction is not None:
        if not 0.0 < low_fraction <= 1.0:
            raise ValueError(f"low_fraction must be in (0, 1], not {low_fraction}")
        m = max(1, math.ceil(low_fraction * (n // 2)))
        energy = energy[: m + 1]
    return float(energy.sum())


def oscillation(x, low_fraction: float = LOW_FRACTION) -> float:
    """Low-frequency energy of the signal's rises above its running minimum, relative to the
    signal's total non-DC energy.

    A non-increasing signal (a loss that only goes down) gives exactly 0; spikes and slow
    oscillations give a positive share (it can exceed 1 in contrived cases). Removing the
    running minimum takes out the downward trend, which otherwise owns nearly all the
    low-frequency energy of every early loss curve. NaN for a constant signal.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    total = dft_energy(x)
    if not total > 0.0:
        return math.nan
    rises = x - np.minimum.accumulate(x)
    return dft_energy(rises, low_fraction) / total


def spectral_features(
    signal, prefix: str = "spectral", low_fraction: float = LOW_FRACTION
) -> dict[str, float]:
    """All statistics of one window of the (already log-transformed) signal, as named floats:
    ``<prefix>/activity, mobility, complexity, energy, low_energy, oscillation``."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    activity, mobility, complexity = hjorth(x)
    return {
        f"{prefix}/activity": activity,
        f"{prefix}/mobility": mobility,
        f"{prefix}/complexity": complexity,
        f"{prefix}/energy": dft_energy(x),
        f"{prefix}/low_energy": dft_energy(x, low_fraction),
        f"{prefix}/oscillation": oscillation(x, low_fraction),
    }


def loss_signal(loss: float) -> float:
    """log(loss), floored at LOSS_FLOOR; NaN stays NaN, +inf stays +inf."""
    loss = float(loss)
    if math.isnan(loss):
        return math.nan
    return math.log(max(loss, LOSS_FLOOR))


# --- windows over the per-step loss --------------------------------------------------------


class SpectralWindow:
    """The last ``size`` training losses in a ring buffer (``add`` is O(1)); ``metrics``
    computes the spectral statistics of log(loss) over them."""

    def __init__(self, size: int, low_fraction: float = LOW_FRACTION):
        if size < 3:
            raise ValueError(f"window size must be at least 3, not {size}")
        self.size = size
        self.low_fraction = low_fraction
        self._buffer = np.empty(size, dtype=np.float64)
        self._next = 0
        self.count = 0  # losses seen in total

    def add(self, loss: float) -> None:
        self._buffer[self._next] = loss_signal(loss)
        self._next = (self._next + 1) % self.size
        self.count += 1

    def values(self) -> np.ndarray:
        """The window's log-losses, oldest first."""
        if self.count < self.size:
            return self._buffer[: self.count].copy()
        return np.concatenate([self._buffer[self._next :], self._buffer[: self._next]])

    def state(self) -> dict[str, Any]:
        return {"values": self.values(), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        values = np.asarray(state["values"], dtype=np.float64)[-self.size :]
        self._buffer[: len(values)] = values
        self._next = len(values) % self.size
        self.count = int(state["count"])

    def metrics(self, prefix: str = "spectral") -> dict[str, float]:
        """``<prefix>/...`` statistics of the window; {} until it holds MIN_VALUES losses."""
        if self.count < min(MIN_VALUES, self.size):
            return {}
        return spectral_features(self.values(), prefix, self.low_fraction)


class EarlyWindow:
    """The first ``n_steps`` losses of a run. ``add`` returns their ``forecast/...``
    statistics exactly once, when the N-th loss arrives, and None before and after."""

    def __init__(self, n_steps: int, low_fraction: float = LOW_FRACTION):
        if n_steps < 3:
            raise ValueError(f"the early window needs at least 3 steps, not {n_steps}")
        self.n_steps = n_steps
        self.low_fraction = low_fraction
        self._values: list[float] = []
        self.done = False

    def state(self) -> dict[str, Any]:
        return {"values": np.asarray(self._values, dtype=np.float64), "done": self.done}

    def load(self, state: dict[str, Any]) -> None:
        self._values = [float(v) for v in state["values"]]
        self.done = bool(state["done"])

    def add(self, loss: float) -> dict[str, float] | None:
        if self.done:
            return None
        self._values.append(loss_signal(loss))
        if len(self._values) < self.n_steps:
            return None
        self.done = True
        features = spectral_features(self._values, "forecast", self.low_fraction)
        self._values = []
        return features


# --- the forecast --------------------------------------------------------------------------


def grokking_forecast(
    features: Mapping[str, float],
    thresholds: float | Mapping[str, float] = FORECAST_THRESHOLD,
) -> dict[str, Any] | None:
    """A grokking forecast from the early window's features (see :data:`FORECAST_RULE`).

    Input: ``features["forecast/oscillation"]`` (from :class:`EarlyWindow`) and a threshold,
    given as a float or as ``{"oscillation": value}``. Output: None when the statistic is
    missing or not finite (e.g. a constant loss), else an event dict ``{"kind": "forecast",
    "detail", "will_grok", "statistic", "value", "threshold", "rule", "thresholds"}``.

    The idea (Notsawo et al.): oscillations of the training loss early on herald grokking. The
    statistic and its default threshold are grokterm's own and unvalidated; on this project's
    full-batch presets the early loss falls monotonically (statistic 0, forecast "no grokking")
    whether or not the run groks later, so the forecast is scored against the outcome.
    """
    if isinstance(thresholds, Mapping):
        threshold = float(thresholds.get("oscillation", FORECAST_THRESHOLD))
    else:
        threshold = float(thresholds)
    value = features.get("forecast/oscillation")
    if value is None or not math.isfinite(value):
        return None
    will_grok = value >= threshold
    verdict = "grokking likely" if will_grok else "no grokking signal"
    relation = "≥" if will_grok else "<"
    detail = (
        f"{verdict}: early-loss oscillation {value:.3g} {relation} {threshold:g} "
        "(heuristic, unvalidated)"
    )
    return {
        "kind": "forecast",
        "detail": detail,
        "will_grok": bool(will_grok),
        "statistic": "forecast/oscillation",
        "value": float(value),
        "threshold": threshold,
        "rule": FORECAST_RULE,
        "thresholds": {"oscillation": threshold},
    }
