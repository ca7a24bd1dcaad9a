"""Spectral probes: Hjorth parameters and DFT energy against known answers, the windows,
and the early-loss statistics of seed 003 (m₀ and the low-frequency amplitude)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from grokterm.probes import spectral
from grokterm.probes.spectral import (
    EarlyWindow,
    SpectralWindow,
    dft_energy,
    early_loss_features,
    hjorth,
    low_freq_amplitude,
    low_freq_bins,
    oscillation,
    spectral_features,
)

KEYS = ("activity", "mobility", "complexity", "energy", "low_energy", "oscillation")


@pytest.mark.parametrize("omega", [0.05, 0.3, 1.0, 2.5])
def test_hjorth_of_a_sinusoid(omega):
    t = np.arange(20000)
    amplitude = 3.0
    activity, mobility, complexity = hjorth(amplitude * np.sin(omega * t) + 7.0)
    # Δ sin(ωt) = 2 sin(ω/2) cos(ω(t + 1/2)): the difference of a tone is the same tone
    assert activity == pytest.approx(amplitude**2 / 2, rel=2e-3)
    assert mobility == pytest.approx(2 * math.sin(omega / 2), rel=2e-3)
    assert complexity == pytest.approx(1.0, abs=5e-3)


def test_hjorth_of_white_noise():
    x = np.random.default_rng(0).normal(0.0, 2.0, 200_000)
    activity, mobility, complexity = hjorth(x)
    assert activity == pytest.approx(4.0, rel=0.01)
    assert mobility == pytest.approx(math.sqrt(2), rel=0.01)  # Var(Δx) = 2σ²
    assert complexity == pytest.approx(math.sqrt(3 / 2), rel=0.01)  # Var(Δ²x) = 6σ²


def test_constant_and_degenerate_signals_are_defined_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hjorth(np.full(50, 0.1)) == (0.0, 0.0, pytest.approx(math.nan, nan_ok=True))
        assert math.isnan(hjorth(np.full(50, 0.1))[2])
        assert dft_energy(np.full(50, 0.1)) == 0.0
        assert dft_energy(np.full(50, 0.1), 0.2) == 0.0
        assert math.isnan(oscillation(np.full(50, 0.1)))
        _, mobility, complexity = hjorth(np.arange(30.0))  # a ramp: Δx is constant
        assert mobility == 0.0 and math.isnan(complexity)
        assert all(math.isnan(v) for v in hjorth([]))
        assert math.isnan(hjorth([1.0, 2.0])[2])
        assert all(math.isnan(v) for v in hjorth([1.0, math.nan, 2.0]))
        features = spectral_features(np.full(16, -2.0))
        assert features["spectral/activity"] == 0.0 and features["spectral/energy"] == 0.0


def test_dft_energy_of_a_pure_tone():
    n, k0, amplitude = 256, 10, 3.0
    t = np.arange(n)
    x = 5.0 + amplitude * np.cos(2 * np.pi * k0 * t / n + 0.4)
    expected = amplitude**2 * n / 2  # Σ (x − x̄)² of a whole number of periods
    assert dft_energy(x) == pytest.approx(expected, rel=1e-9)
    # the tone sits in bin 10: inside the lowest 10% (bins 1..13), outside the lowest 3% (1..4)
    assert dft_energy(x, 0.1) == pytest.approx(expected, rel=1e-9)
    assert dft_energy(x, 0.03) == pytest.approx(0.0, abs=1e-9)
    assert dft_energy(x, 1.0) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [7, 64, 101])
def test_dft_energy_is_parseval(n):
    x = np.random.default_rng(n).normal(size=n)
    assert dft_energy(x) == pytest.approx(float(np.sum((x - x.mean()) ** 2)), rel=1e-10)
    assert dft_energy(x, 0.5) <= dft_energy(x)
    with pytest.raises(ValueError):
        dft_energy(x, 0.0)


def test_oscillation_is_zero_for_a_falling_loss_and_positive_for_spikes():
    t = np.arange(400)
    falling = np.log(4.6 * np.exp(-t / 40) + 1e-3)
    assert oscillation(falling) == 0.0
    spiky = falling.copy()
    spiky[200:260] += np.sin(np.linspace(0, np.pi, 60)) * 5  # a slow slingshot-like bump
    assert oscillation(spiky) > 0.1
    # white noise on the loss counts only with its low-frequency share
    noisy = falling + np.random.default_rng(0).normal(0, 0.05, falling.size)
    assert 0.0 < oscillation(noisy) < 0.01


def test_sliding_window_equals_batch_computation():
    rng = np.random.default_rng(1)
    losses = np.exp(rng.normal(-2, 1, 1000)) * np.linspace(5, 0.01, 1000)
    window = SpectralWindow(64)
    for i, loss in enumerate(losses[:7]):
        window.add(loss)
        assert window.metrics() == {}, i
    for loss in losses[7:]:
        window.add(float(loss))
    got = window.metrics()
    assert sorted(got) == sorted(f"spectral/{key}" for key in KEYS)
    expected = spectral_features(np.log(losses[-64:]))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert window.metrics("live")["live/mobility"] == got["spectral/mobility"]


def test_partly_filled_window_uses_what_it_has():
    window = SpectralWindow(100)
    values = [1.0, 0.5, 0.7, 0.3, 0.4, 0.2, 0.25, 0.1, 0.12, 0.05]
    for v in values:
        window.add(v)
    expected = spectral_features(np.log(values))
    assert window.metrics() == pytest.approx(expected)


def test_loss_signal_floors_zero_and_keeps_nan():
    assert spectral.loss_signal(0.0) == math.log(spectral.LOSS_FLOOR)
    assert math.isnan(spectral.loss_signal(math.nan))
    window = SpectralWindow(8)
    for v in [1.0, 0.5, 0.0, 0.2, 0.1, 0.3, 0.05, 0.01]:
        window.add(v)
    assert all(math.isfinite(v) for v in window.metrics().values())


def test_early_window_reports_the_raw_loss_statistics_once():
    losses = [4.0 * math.exp(-i / 5) for i in range(50)]
    early = EarlyWindow(20)
    out = [early.add(loss) for loss in losses]
    assert [i for i, o in enumerate(out) if o is not None] == [19]
    assert sorted(out[19]) == ["forecast/low_freq_amp", "forecast/m0"]
    # the raw loss, not its log
    assert out[19]["forecast/m0"] == pytest.approx(np.var(losses[:20]), rel=1e-12)
    assert out[19] == early_loss_features(losses[:20])


def test_m0_is_the_variance_and_the_integrated_periodogram():
    x = np.random.default_rng(3).exponential(size=400) + np.linspace(5, 0, 400)
    m0 = early_loss_features(x)["forecast/m0"]
    spectrum = np.abs(np.fft.fft(x)) ** 2
    assert m0 == pytest.approx(np.var(x), rel=1e-12)
    # Parseval: (1/N²) Σ_{k≥1} |X_k|², the periodogram |X_k|²/N integrated over df = 1/N
    assert m0 == pytest.approx(spectrum[1:].sum() / x.size**2, rel=1e-10)


def test_low_frequency_amplitude_of_tones():
    n = 400
    t = np.arange(n)
    assert low_freq_bins(n) == 20 and low_freq_bins(16) == 1
    slow = 7.0 + 3.0 * np.cos(2 * np.pi * 5 * t / n + 0.3)  # bin 5: a low frequency
    fast = 7.0 + 3.0 * np.cos(2 * np.pi * 50 * t / n)  # bin 50: above K = 20
    assert low_freq_amplitude(slow) == pytest.approx(3.0, rel=1e-9)
    assert low_freq_amplitude(fast) == pytest.approx(0.0, abs=1e-9)
    assert low_freq_amplitude(slow + fast - 7.0) == pytest.approx(3.0, rel=1e-9)
    assert low_freq_amplitude(np.full(n, 2.0)) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(low_freq_amplitude([1.0, math.nan, 2.0]))


def test_oscillating_early_loss_has_a_larger_m0_than_a_smooth_one():
    """Seed 003's regime: mini-batch Adam makes the early loss oscillate; a full batch
    makes it fall smoothly. m₀ tells the two apart; no threshold is applied."""
    t = np.arange(400)
    smooth = 0.5 * np.exp(-t / 40) + 0.01
    oscillating = smooth + 0.3 * (1 + np.sin(2 * np.pi * t / 50))
    calm, loud = early_loss_features(smooth), early_loss_features(oscillating)
    assert loud["forecast/m0"] > 5 * calm["forecast/m0"]
    assert loud["forecast/low_freq_amp"] > calm["forecast/low_freq_amp"]
    constant = early_loss_features(np.full(400, 2.0))
    assert constant["forecast/m0"] == 0.0
    assert constant["forecast/low_freq_amp"] == pytest.approx(0.0, abs=1e-12)


def test_early_window_resumes_from_its_state_and_from_an_old_log_state():
    losses = [2.0 / (1 + i) for i in range(30)]
    whole = EarlyWindow(30)
    expected = [f for f in map(whole.add, losses) if f][0]
    resumed = EarlyWindow(30)
    for loss in losses[:12]:
        resumed.add(loss)
    again = EarlyWindow(30)
    again.load(resumed.state())
    assert [f for f in map(again.add, losses[12:]) if f][0] == expected
    old = EarlyWindow(30)  # checkpoints before the raw-loss window kept log(loss)
    old.load({"values": np.log(losses[:12]), "done": False})
    got = [f for f in map(old.add, losses[12:]) if f][0]
    assert got == pytest.approx(expected, rel=1e-12)
