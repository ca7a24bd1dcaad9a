"""Spectral probes: Hjorth parameters and DFT energy against known answers, the windows,
and the (heuristic) grokking forecast."""

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
    grokking_forecast,
    hjorth,
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


def test_early_window_reports_once():
    early = EarlyWindow(20)
    out = [early.add(4.0 * math.exp(-i / 5)) for i in range(50)]
    reported = [i for i, o in enumerate(out) if o is not None]
    assert reported == [19]
    features = out[19]
    assert sorted(features) == sorted(f"forecast/{key}" for key in KEYS)
    expected = spectral_features(np.log([4.0 * math.exp(-i / 5) for i in range(20)]), "forecast")
    assert features == pytest.approx(expected)


def test_forecast_rule():
    t = np.arange(400)
    smooth = 4.6 * np.exp(-t / 40) + 1e-3
    bump = np.where((t > 200) & (t < 300), 5 * np.sin((t - 200) / 100 * np.pi), 0.0)
    bumpy = smooth * np.exp(bump)  # the loss rises ~150-fold and falls back

    def features(losses):
        early = EarlyWindow(len(losses))
        return [f for f in map(early.add, losses) if f][0]

    calm = grokking_forecast(features(smooth), 0.1)
    assert calm["kind"] == "forecast" and calm["will_grok"] is False
    assert calm["value"] == 0.0 and calm["threshold"] == 0.1
    assert "heuristic" in calm["detail"]
    loud = grokking_forecast(features(bumpy), {"oscillation": 0.1})
    assert loud["will_grok"] is True and loud["value"] >= 0.1
    assert loud["thresholds"] == {"oscillation": 0.1}
    # the threshold decides
    assert grokking_forecast(features(bumpy), loud["value"] + 1e-9)["will_grok"] is False
    # no statistic (constant loss, or missing): no forecast
    assert grokking_forecast(features(np.full(50, 2.0))) is None
    assert grokking_forecast({}) is None
