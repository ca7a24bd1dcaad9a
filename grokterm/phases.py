"""Online phase detector (DESIGN §7): t1..t4 and the outcome, from the probe stream.

Pure Python over metric records, so it runs live in a training process and again over a
stored stream (`replay`) with other thresholds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from grokterm.config import Detector

OUTCOMES = ("confusion", "memorization", "comprehension", "grokking")


@dataclass
class PhaseDetector:
    thresholds: Detector = field(default_factory=Detector)
    marks: dict[str, int] = field(default_factory=dict)
    outcome: str | None = None
    _test_since_t2: list[float] = field(default_factory=list)

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
        return events

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
        gap = self.marks["t4"] - self.marks["t2"]
        self.outcome = "grokking" if gap > self.thresholds.grokking_gap else "comprehension"
        relation = ">" if self.outcome == "grokking" else "≤"
        detail = f"{self.outcome}: t4 - t2 = {gap} steps {relation} {self.thresholds.grokking_gap}"
        return self._event("outcome", step, detail)

    def finish(self, step: int) -> list[dict[str, Any]]:
        """At the end of a run: the outcome, if the stream has not decided it yet."""
        if self.outcome is not None:
            return []
        if "t4" in self.marks:  # generalized before memorizing: no gap at all
            self.outcome = "comprehension"
            return [self._event("outcome", step, "comprehension: test generalized with train")]
        if "t2" in self.marks:
            self.outcome = "memorization"
            detail = f"memorization: train memorized at {self.marks['t2']}, test never generalized"
        else:
            self.outcome = "confusion"
            detail = "confusion: train accuracy never reached the memorization threshold"
        return [self._event("outcome", step, detail)]

    def summary(self) -> dict[str, Any]:
        return {**{k: self.marks.get(k) for k in ("t1", "t2", "t3", "t4")}, "phase": self.outcome}


def replay(
    records: list[dict[str, Any]], thresholds: Detector, final_step: int | None = None
) -> tuple[PhaseDetector, list[dict[str, Any]]]:
    """Run a fresh detector over stored records; finish at final_step when given."""
    detector = PhaseDetector(thresholds)
    events: list[dict[str, Any]] = []
    for record in records:
        events.extend(detector.update(record["step"], record))
    if final_step is not None:
        events.extend(detector.finish(final_step))
    return detector, events
