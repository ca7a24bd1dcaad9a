"""Online phase detector (DESIGN §7): t1..t4, the outcome, anti-grokking, slingshots and
the early-loss statistics of seed 003 (recorded, not judged), from the metric stream.

Pure Python over metric records, so it runs live in a training process and again over a
stored stream (`replay`) with other thresholds.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from grokterm.config import Detector

OUTCOMES = ("confusion", "memorization", "comprehension", "grokking")
SLINGSHOT_PROBES_AFTER = 3  # probes after a loss spike within which the norm must fall


@dataclass
class LossSpike:
    """A loss spike waiting for the last-layer norm to fall before it counts as a slingshot."""

    step: int
    loss: float
    minimum: float
    norms_before: list[float]
    norms_after: list[float] = field(default_factory=list)

    @property
    def peak_norm(self) -> float:
        return max([self.norms_before[-1], *self.norms_after])


@dataclass
class PhaseDetector:
    thresholds: Detector = field(default_factory=Detector)
    marks: dict[str, int] = field(default_factory=dict)
    outcome: str | None = None
    _test_since_t2: list[float] = field(default_factory=list)
    _smoothed_test: float | None = None
    _peak_test: tuple[float, int] | None = None
    _collapsed: bool = False
    _heralds: dict[str, tuple[int, str]] = field(default_factory=dict)
    _loss_min: float = math.inf
    _last_layer_norms: list[float] = field(default_factory=list)
    _spike: LossSpike | None = None
    _forecast: dict[str, Any] | None = None

    def update(self, step: int, metrics: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed one probe record; return the events it triggers (possibly none)."""
        train, test = metrics.get("train_acc"), metrics.get("test_acc")
        if train is None or test is None:
            return []
        th = self.thresholds
        events: list[dict[str, Any]] = []
        if "t1" not in self.marks and train >= th.confusion_end:
            events.append(self._mark("t1", step, f"train acc {train:.3f} ≥ {th.confusion_end}"))
        if "t2" not in self.marks and train >= th.memorized:
            events.append(
                self._mark("t2", step, f"memorized: train acc {train:.3f} ≥ {th.memorized}")
            )
            if "t4" in self.marks:
                events.append(self._decide(step))
        if "t2" in self.marks and "t3" not in self.marks:
            events.extend(self._check_comprehension(step, test))
        if "t4" not in self.marks and test >= th.generalized:
            if "t3" not in self.marks:
                events.append(self._mark("t3", step, "comprehension by the time of t4"))
            events.append(
                self._mark("t4", step, f"generalized: test acc {test:.3f} ≥ {th.generalized}")
            )
            if "t2" in self.marks:
                events.append(self._decide(step))
        if "last_layer_norm" in metrics:
            events.extend(self._watch_last_layer_norm(metrics["last_layer_norm"]))
        if "t2" in self.marks:
            self._watch_heralds(step, metrics)
            events.extend(self._watch_collapse(step, train, test))
        return events

    # --- anti-grokking (Prakash & Martin 2025) ----------------------------------------------
    # Watched from memorization on, not from t4: MNIST-1k peaks near 0.9 and may never reach
    # the generalization bar, yet its collapse is the paper's headline.

    def _watch_heralds(self, step: int, metrics: dict[str, Any]) -> None:
        """Remember when, after memorization, a layer first had α < 2 and traps appeared."""
        alphas = {k: v for k, v in metrics.items() if k.startswith("alpha/") and v == v}
        low = {k: v for k, v in alphas.items() if v < self.thresholds.alpha_overfit}
        if low and "alpha" not in self._heralds:
            layer = min(low, key=low.get).removeprefix("alpha/")
            self._heralds["alpha"] = (step, f"{layer} α={low[min(low, key=low.get)]:.2f}")
        traps = metrics.get("traps_total")
        if traps and traps > 0 and "traps" not in self._heralds:
            self._heralds["traps"] = (step, f"{traps:.3g} trap(s) per shuffle")

    def _watch_collapse(self, step: int, train: float, test: float) -> list[dict[str, Any]]:
        th = self.thresholds
        if self._smoothed_test is None:
            self._smoothed_test = test
        else:
            k = th.collapse_smoothing
            self._smoothed_test = k * self._smoothed_test + (1 - k) * test
        smoothed = self._smoothed_test
        if self._peak_test is None or smoothed > self._peak_test[0]:
            self._peak_test = (smoothed, step)
        peak, peak_step = self._peak_test
        # The raw probe must be down too: the EMA lags behind a recovery. A low peak is the
        # noise of a run that has not generalized yet, not a collapse.
        floor = peak - th.collapse_drop
        fallen = smoothed <= floor and test < floor and peak >= th.collapse_min_peak
        if self._collapsed or train < th.memorized or not fallen:
            return []
        self._collapsed = True
        detail = (
            f"anti-grokking: smoothed test acc {smoothed:.3f} is {peak - smoothed:.2f} below its "
            f"peak {peak:.3f} (step {peak_step}) while train acc is {train:.3f}; "
            + "; ".join(self._herald_text(kind, step) for kind in ("alpha", "traps"))
        )
        return [self._event("anti_grokking", step, detail)]

    def _herald_text(self, kind: str, step: int) -> str:
        alpha = f"layer with α < {self.thresholds.alpha_overfit}"
        label = {"alpha": f"a {alpha}", "traps": "traps"}
        if kind not in self._heralds:
            return f"no {alpha if kind == 'alpha' else 'traps'} since memorization"
        since, what = self._heralds[kind]
        return f"{label[kind]} since step {since} ({what}), {step - since} steps before"

    # --- slingshots (Thilak et al. 2022) -----------------------------------------------------
    # A slingshot is a loss spike inside a cycle of the last-layer norm: the norm grows up to
    # the spike and falls after it. A loss jump alone is mini-batch noise or an lr artefact.

    def update_loss(self, step: int, loss: float) -> None:
        """Feed the per-step training loss; cheap enough for every step. A spike is held
        until the probes after it show the last-layer norm falling (see update)."""
        th = self.thresholds
        if loss < self._loss_min:
            self._loss_min = loss
            return
        if self._loss_min >= th.slingshot_floor or loss < th.slingshot_floor:
            return
        if loss < th.slingshot_factor * self._loss_min or self._spike is not None:
            return
        norms = self._last_layer_norms
        if len(norms) >= 2 and norms[-1] > norms[-2]:
            self._spike = LossSpike(step, loss, self._loss_min, list(norms))
        self._loss_min = loss  # re-arm only after the loss falls again

    def _watch_last_layer_norm(self, norm: float) -> list[dict[str, Any]]:
        self._last_layer_norms = [*self._last_layer_norms[-3:], norm]
        spike = self._spike
        if spike is None:
            return []
        if norm < spike.peak_norm:
            self._spike = None
            return [self._slingshot(spike, norm)]
        spike.norms_after.append(norm)
        if len(spike.norms_after) >= SLINGSHOT_PROBES_AFTER:
            self._spike = None  # the norm kept growing: no cycle, no slingshot
        return []

    def _slingshot(self, spike: LossSpike, fallen_to: float) -> dict[str, Any]:
        before = " → ".join(f"{n:.2f}" for n in spike.norms_before[-3:])
        detail = (
            f"slingshot: train loss {spike.loss:.3g} is {spike.loss / spike.minimum:.0f}× its "
            f"running minimum {spike.minimum:.3g}; last-layer norm grew {before} before it "
            f"and fell from {spike.peak_norm:.2f} to {fallen_to:.2f} after"
        )
        return self._event("slingshot", spike.step, detail)

    def diverged(self, step: int, reason: str) -> dict[str, Any]:
        return self._event("diverged", step, reason)

    # --- early-loss statistics (seed 003) ---------------------------------------------------

    def record_forecast(self, step: int, features: dict[str, float]) -> list[dict[str, Any]]:
        """Record m₀ and the low-frequency amplitude of the early loss; no verdict, since no
        threshold is published (they are read against test accuracy across a sweep)."""
        m0, amplitude = features.get("forecast/m0"), features.get("forecast/low_freq_amp")
        if m0 is None or amplitude is None:
            return []
        self._forecast = {"forecast_m0": m0, "forecast_low_freq_amp": amplitude}
        detail = (
            f"early loss over steps 1-{step}: m₀ = Var(loss) = {m0:.4g}, low-frequency "
            f"amplitude {amplitude:.4g}; no threshold is known: compare runs across a sweep"
        )
        return [{**self._event("forecast", step, detail), **self._forecast}]

    def forecast_summary(self) -> dict[str, Any]:
        """The early-loss statistics for a run's summary; empty until recorded."""
        return dict(self._forecast or {})

    def _check_comprehension(self, step: int, test: float) -> list[dict[str, Any]]:
        self._test_since_t2.append(test)
        plateau = statistics.median(self._test_since_t2)
        if test >= plateau + self.thresholds.comprehension_rise:
            rise = self.thresholds.comprehension_rise
            detail = f"test acc {test:.3f} rose {rise:.2f} above its plateau {plateau:.3f}"
            return [self._mark("t3", step, detail)]
        return []

    def _mark(self, kind: str, step: int, detail: str) -> dict[str, Any]:
        self.marks[kind] = step
        return self._event(kind, step, detail)

    def _event(self, kind: str, step: int, detail: str) -> dict[str, Any]:
        return {
            "step": step,
            "kind": kind,
            "detail": detail,
            "thresholds": self.thresholds.model_dump(),
        }

    def _decide(self, step: int) -> dict[str, Any]:
        """Liu et al.'s rule with both t2 and t4 reached; the ratio t4/t2 makes the gap scale
        with the run, since a fixed number of steps means little at 1e7 steps."""
        th = self.thresholds
        t2, t4 = self.marks["t2"], self.marks["t4"]
        gap = t4 - t2
        ratio = t4 / t2 if t2 > 0 else math.inf
        late = gap > th.grokking_gap and ratio > th.grokking_ratio
        self.outcome = "grokking" if late else "comprehension"
        if late:
            why = f"> {th.grokking_gap} and t4/t2 = {ratio:.3g} > {th.grokking_ratio}"
        elif gap <= th.grokking_gap:
            why = f"≤ {th.grokking_gap}"
        else:
            why = f"but t4/t2 = {ratio:.3g} ≤ {th.grokking_ratio}"
        detail = f"{self.outcome}: t4 - t2 = {gap} steps {why}"
        shown_ratio = round(ratio, 3) if math.isfinite(ratio) else None
        outcome = {"outcome": self.outcome, "gap": gap, "ratio": shown_ratio}
        return {**self._event("outcome", step, detail), **outcome}

    def finish(self, step: int) -> list[dict[str, Any]]:
        """At the end of a run: the outcome, if the stream has not decided it yet."""
        if self.outcome is not None:
            return []
        if "t2" in self.marks:
            self.outcome = "memorization"
            detail = f"memorization: train memorized at {self.marks['t2']}, test never generalized"
        else:
            self.outcome = "confusion"
            detail = "confusion: train accuracy never reached the memorization threshold"
            if "t4" in self.marks:  # Liu et al.: comprehension needs train reached as well
                detail += f" (test acc reached the generalization bar at {self.marks['t4']})"
        return [{**self._event("outcome", step, detail), "outcome": self.outcome}]

    def summary(self) -> dict[str, Any]:
        return {**{k: self.marks.get(k) for k in ("t1", "t2", "t3", "t4")}, "phase": self.outcome}


def replay(
    records: list[dict[str, Any]], thresholds: Detector, final_step: int | None = None
) -> tuple[PhaseDetector, list[dict[str, Any]]]:
    """Run a fresh detector over stored records; finish at final_step when given."""
    detector = PhaseDetector(thresholds)
    events: list[dict[str, Any]] = []
    for record in records:
        if "loss" in record:
            detector.update_loss(record["step"], record["loss"])
        if "forecast/m0" in record:  # older streams carry forecast/oscillation: nothing to say
            events.extend(detector.record_forecast(record["step"], record))
        events.extend(detector.update(record["step"], record))
    if final_step is not None:
        events.extend(detector.finish(final_step))
    return detector, events
