"""Spectral probes of the training loss: Hjorth parameters and DFT energy of a live window,
and the early-loss statistics of seed 003 (Notsawo et al. 2023).

A window of the per-step training loss is treated as a signal x_0..x_{N-1} with DFT
X_k = Σ_t x_t e^{−2πikt/N}. Its Hjorth parameters are

* activity   = Var(x)                          (the signal power),
* mobility   = √(Var(Δx) / Var(x))             (a mean frequency),
* complexity = mobility(Δx) / mobility(x)      (how far from a pure tone; 1 for a sinusoid).

**Live window (``spectral/...``): log(loss).** Here the loss spans four or more orders of
magnitude within a run, so on the raw loss any late window is dominated by its largest
values. On log(loss) a relative change counts the same at any loss level; losses are floored
at ``LOSS_FLOOR`` before the log (a float32 loss can be exactly 0). Its DFT energy is
Σ_{k≥1} |X_k|² / N (= N · activity by Parseval), and its low-frequency energy counts the
lowest ``low_fraction`` of the frequencies.

**Early window (``forecast/...``): the raw loss, as seed 003 defines it.** Over the first
N steps (``probes.forecast_steps``, 400 by default):

* ``forecast/m0``, Hjorth activity m₀ = ∫|F(L)(ω)|²dω, taken as the population variance
  m₀ = (1/N) Σ_t (ℓ_t − ℓ̄)² = (1/N²) Σ_{k=1}^{N−1} |X_k|²: the periodogram |X_k|²/N
  integrated over frequency in cycles per step (bin width 1/N), DC excluded;
* ``forecast/low_freq_amp``, the low-frequency amplitude Σ_{k=1}^{K} 2|X_k| / N over the
  lowest K non-DC bins, K = ⌈⌊N/2⌋ / 10⌉ (the lowest tenth of the one-sided spectrum: K = 20
  at N = 400, periods of 20 steps and longer). A sinusoid of amplitude A in one of those
  bins contributes exactly A.

These are recorded, not judged: Notsawo et al. read them against final test accuracy across
a hyperparameter grid, and no threshold that turns one run's m₀ into a prediction is
published (grokterm research notes, papers.md §5). Early oscillations come with mini-batch
Adam; with a full batch the early loss falls smoothly and m₀ is small.

numpy only; no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOSS_FLOOR = 1e-30  # losses at or below this are taken as this before the log
MIN_VALUES = 8  # a window reports nothing until it holds this many values (or is full)
LOW_FRACTION = 0.1  # "low frequencies": the lowest 10% of the non-DC frequencies up to Nyquist

__all__ = [
    "EarlyWindow",
    "SpectralWindow",
    "dft_energy",
    "early_loss_features",
    "hjorth",
    "low_freq_amplitude",
    "low_freq_bins",
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


def low_freq_bins(n: int) -> int:
    """K, the number of non-DC bins that count as low frequencies in an N-sample window: the
    lowest tenth of the one-sided spectrum, at least 1."""
    return max(1, math.ceil(LOW_FRACTION * (n // 2)))


def low_freq_amplitude(x) -> float:
    """Σ_{k=1}^{K} 2|X_k| / N with K = ``low_freq_bins(N)``: the summed amplitudes of the
    lowest K non-DC sinusoids of the signal. NaN if it is too short or not finite."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    if n < 2 or not np.all(np.isfinite(x)):
        return math.nan
    k = low_freq_bins(n)
    return float(2.0 * np.abs(np.fft.rfft(x)[1 : k + 1]).sum() / n)


def early_loss_features(losses) -> dict[str, float]:
    """Seed 003's statistics of the raw early training loss (see the module docstring):
    ``forecast/m0`` (Hjorth activity, the population variance) and ``forecast/low_freq_amp``."""
    x = np.asarray(losses, dtype=np.float64).ravel()
    finite = x.size > 0 and bool(np.all(np.isfinite(x)))
    return {
        "forecast/m0": _variance(x) if finite else math.nan,
        "forecast/low_freq_amp": low_freq_amplitude(x),
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
    """The raw losses of a run's first ``n_steps`` steps. ``add`` returns their
    ``forecast/...`` statistics (:func:`early_loss_features`) exactly once, when the N-th
    loss arrives, and None before and after."""

    def __init__(self, n_steps: int):
        if n_steps < 3:
            raise ValueError(f"the early window needs at least 3 steps, not {n_steps}")
        self.n_steps = n_steps
        self._losses: list[float] = []
        self.done = False

    def state(self) -> dict[str, Any]:
        return {"losses": np.asarray(self._losses, dtype=np.float64), "done": self.done}

    def load(self, state: dict[str, Any]) -> None:
        if "losses" in state:
            self._losses = [float(v) for v in state["losses"]]
        else:  # a checkpoint from before the raw-loss window kept log(loss)
            self._losses = [math.exp(float(v)) for v in state["values"]]
        self.done = bool(state["done"])

    def add(self, loss: float) -> dict[str, float] | None:
        if self.done:
            return None
        self._losses.append(float(loss))
        if len(self._losses) < self.n_steps:
            return None
        self.done = True
        features = early_loss_features(self._losses)
        self._losses = []
        return features
