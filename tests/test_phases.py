"""PhaseDetector (grokterm/phases.py) on synthetic probe streams (DESIGN §7)."""

from __future__ import annotations

from typing import Any

import pytest

from grokterm.config import Detector
from grokterm.phases import OUTCOMES, PhaseDetector, replay

Stream = list[tuple[int, float, float]]  # (step, train acc, test acc)


def records(stream: Stream) -> list[dict[str, Any]]:
    return [
        {"step": step, "train_acc": train, "test_acc": test, "train_loss": 1 - train}
        for step, train, test in stream
    ]


def feed(
    stream: Stream, thresholds: Detector | None = None, final_step: int | None = None
) -> tuple[PhaseDetector, list[dict[str, Any]]]:
    """Live use: update per probe, then finish at the end of the run."""
    detector = PhaseDetector(thresholds or Detector())
    events: list[dict[str, Any]] = []
    for record in records(stream):
        events.extend(detector.update(record["step"], record))
    if final_step is not None:
        events.extend(detector.finish(final_step))
    return detector, events


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in events]


def outcome_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == "outcome"]


def grokking_stream() -> Stream:
    """Train memorizes by step 200; test sits at chance until ~6k, generalizes at 8k."""
    stream: Stream = [(0, 0.01, 0.01), (100, 0.6, 0.02), (200, 1.0, 0.03)]
    stream += [(step, 1.0, 0.04 + 0.0001 * (step % 3)) for step in range(300, 6000, 100)]
    stream += [(6000, 1.0, 0.30), (7000, 1.0, 0.70), (8000, 1.0, 0.97), (9000, 1.0, 1.0)]
    return stream


# --- outcomes ----------------------------------------------------------------------------


def test_grokking() -> None:
    detector, events = feed(grokking_stream(), final_step=10_000)
    marks = detector.marks
    assert marks == {"t1": 100, "t2": 200, "t3": 6000, "t4": 8000}
    assert marks["t1"] <= marks["t2"] < marks["t3"] <= marks["t4"]
    assert detector.outcome == "grokking"
    assert kinds(events) == ["t1", "t2", "t3", "t4", "outcome"]
    [outcome] = outcome_events(events)
    assert outcome["step"] == 8000
    assert outcome["detail"].startswith("grokking")
    assert "7800" in outcome["detail"]  # t4 - t2
    for event in events:
        assert set(event) >= {"step", "kind", "detail", "thresholds"}
        assert event["thresholds"] == Detector().model_dump()
    assert [e["step"] for e in events[:4]] == [100, 200, 6000, 8000]
    assert detector.summary() == {
        "t1": 100, "t2": 200, "t3": 6000, "t4": 8000, "phase": "grokking"
    }


def test_finish_after_a_decided_outcome_adds_nothing() -> None:
    detector, _ = feed(grokking_stream())
    assert detector.finish(10_000) == []
    assert detector.finish(10_000) == []
    assert detector.outcome == "grokking"


def test_comprehension_when_test_follows_train_closely() -> None:
    stream: Stream = [(0, 0.0, 0.0), (100, 0.7, 0.2), (200, 1.0, 0.5), (300, 1.0, 0.8)]
    stream += [(400, 1.0, 0.96), (500, 1.0, 0.99)]
    detector, events = feed(stream, final_step=1000)
    assert detector.marks["t2"] == 200 and detector.marks["t4"] == 400
    assert detector.marks["t1"] <= detector.marks["t2"] <= detector.marks["t3"]
    assert detector.marks["t3"] <= detector.marks["t4"]
    assert detector.outcome == "comprehension"
    [outcome] = outcome_events(events)
    assert outcome["step"] == 400 and outcome["detail"].startswith("comprehension")


def test_train_and_test_together_is_comprehension_with_zero_gap() -> None:
    detector, events = feed([(0, 0.1, 0.1), (50, 1.0, 0.99)], final_step=100)
    assert detector.marks == {"t1": 50, "t2": 50, "t3": 50, "t4": 50}
    assert detector.outcome == "comprehension"
    assert kinds(events) == ["t1", "t2", "t3", "t4", "outcome"]


@pytest.mark.parametrize(("t4", "outcome"), [(1200, "comprehension"), (1250, "grokking")])
def test_gap_boundary(t4: int, outcome: str) -> None:
    """t4 - t2 == gap is comprehension; one probe more is grokking."""
    stream: Stream = [(0, 0.0, 0.0), (200, 1.0, 0.1)]
    stream += [(step, 1.0, 0.1) for step in range(250, t4, 50)]
    stream += [(t4, 1.0, 0.99)]
    detector, _ = feed(stream, final_step=5000)
    assert detector.marks["t4"] - detector.marks["t2"] == t4 - 200
    assert detector.outcome == outcome


def test_memorization() -> None:
    stream: Stream = [(0, 0.0, 0.0), (100, 0.8, 0.05), (200, 1.0, 0.1)]
    stream += [(step, 1.0, 0.3) for step in range(300, 5000, 100)]
    detector, events = feed(stream)
    assert detector.outcome is None
    assert "outcome" not in kinds(events)
    assert "t4" not in detector.marks
    finish = detector.finish(5000)
    assert detector.outcome == "memorization"
    [outcome] = finish
    assert outcome["kind"] == "outcome" and outcome["step"] == 5000
    assert outcome["detail"].startswith("memorization") and "200" in outcome["detail"]
    assert detector.summary()["phase"] == "memorization"
    assert detector.summary()["t2"] == 200 and detector.summary()["t4"] is None


@pytest.mark.parametrize("train", [0.2, 0.7, 0.98])
def test_confusion_via_finish(train: float) -> None:
    stream: Stream = [(step, train, 0.05) for step in range(0, 3000, 100)]
    detector, events = feed(stream)
    assert "t2" not in detector.marks and "t4" not in detector.marks
    assert ("t1" in detector.marks) == (train >= 0.5)
    assert detector.outcome is None
    [outcome] = detector.finish(3000)
    assert detector.outcome == "confusion"
    assert outcome["detail"].startswith("confusion")
    assert outcome["thresholds"] == Detector().model_dump()


def test_t4_before_t2_then_memorized() -> None:
    """Test accuracy generalizes while train accuracy is still below the memorization bar."""
    stream: Stream = [(0, 0.1, 0.1), (100, 0.9, 0.96), (200, 0.97, 0.97), (300, 1.0, 0.99)]
    detector, events = feed(stream, final_step=1000)
    assert detector.marks["t4"] == 100 and detector.marks["t2"] == 300
    assert detector.outcome == "comprehension"
    assert len(outcome_events(events)) == 1
    assert outcome_events(events)[0]["step"] == 300
    assert detector.marks["t3"] <= detector.marks["t4"]


def test_t4_without_t2_is_not_comprehension() -> None:
    """Liu et al.: comprehension and grokking need train and test both reached."""
    stream: Stream = [(0, 0.1, 0.1), (100, 0.9, 0.96), (200, 0.95, 0.97)]
    detector, events = feed(stream)
    assert "t2" not in detector.marks and detector.marks["t4"] == 100
    assert detector.outcome is None
    [outcome] = detector.finish(500)
    assert detector.outcome == "confusion"
    assert outcome["step"] == 500
    assert "test acc reached the generalization bar at 100" in outcome["detail"]


def test_outcomes_are_the_known_ones() -> None:
    seen = set()
    for stream in (
        grokking_stream(),
        [(0, 0.0, 0.0), (50, 1.0, 0.99)],
        [(0, 0.0, 0.0), (50, 1.0, 0.1)],
        [(0, 0.0, 0.0), (50, 0.1, 0.1)],
    ):
        detector, _ = feed(stream, final_step=10_000)
        seen.add(detector.outcome)
    assert seen == set(OUTCOMES)


# --- t3 ----------------------------------------------------------------------------------


def test_t3_is_the_first_probe_after_t2_rising_above_the_plateau() -> None:
    stream: Stream = [(0, 0.0, 0.0), (100, 1.0, 0.20)]
    stream += [(step, 1.0, 0.20 + 0.01 * (step % 2)) for step in range(200, 2000, 100)]
    stream += [(2000, 1.0, 0.28), (2100, 1.0, 0.31), (2200, 1.0, 0.6), (5000, 1.0, 0.99)]
    detector, events = feed(stream)
    assert detector.marks["t3"] == 2100  # 0.31 >= 0.20 + 0.10; 0.28 is not
    [t3] = [e for e in events if e["kind"] == "t3"]
    assert "plateau" in t3["detail"]


def test_rise_before_t2_does_not_count_for_t3() -> None:
    stream: Stream = [(0, 0.0, 0.0), (100, 0.6, 0.05), (200, 0.8, 0.5), (300, 1.0, 0.5)]
    stream += [(step, 1.0, 0.5) for step in range(400, 3000, 100)]
    detector, _ = feed(stream)
    assert "t3" not in detector.marks


# --- thresholds --------------------------------------------------------------------------


def test_custom_gap_turns_grokking_into_comprehension() -> None:
    thresholds = Detector(grokking_gap=10_000)
    detector, events = feed(grokking_stream(), thresholds, final_step=10_000)
    assert detector.outcome == "comprehension"
    assert all(event["thresholds"]["grokking_gap"] == 10_000 for event in events)


def test_custom_generalized_threshold_turns_grokking_into_memorization() -> None:
    detector, events = feed(grokking_stream(), Detector(generalized=0.999), final_step=9000)
    assert detector.marks["t4"] == 9000  # 1.0 at 9000 is the first >= 0.999
    detector, events = feed(
        grokking_stream()[:-1], Detector(generalized=0.99), final_step=8500
    )
    assert "t4" not in detector.marks
    assert detector.outcome == "memorization"
    assert events[-1]["thresholds"]["generalized"] == 0.99


def test_custom_memorized_threshold_moves_t2() -> None:
    stream: Stream = [(0, 0.0, 0.0), (100, 0.9, 0.05), (200, 0.995, 0.05), (300, 1.0, 0.05)]
    stream += [(step, 1.0, 0.05) for step in range(400, 3000, 100)] + [(3000, 1.0, 0.99)]
    assert feed(stream)[0].marks["t2"] == 200
    strict, _ = feed(stream, Detector(memorized=1.0))
    assert strict.marks["t2"] == 300
    loose, _ = feed(stream, Detector(memorized=0.85, confusion_end=0.8))
    assert loose.marks["t2"] == 100 and loose.marks["t1"] == 100
    # with t2 at 100 and t4 at 3000 the gap is 2900: grokking; with gap 3000 comprehension
    assert loose.outcome == "grokking"
    wide, _ = feed(stream, Detector(memorized=0.85, grokking_gap=3000))
    assert wide.outcome == "comprehension"


def test_the_outcome_records_gap_and_ratio() -> None:
    _, events = feed(grokking_stream(), final_step=10_000)
    [outcome] = outcome_events(events)
    assert outcome["gap"] == 7800 and outcome["ratio"] == 40.0
    assert "t4/t2 = 40 > 2.0" in outcome["detail"]


def test_a_late_run_needs_the_ratio_as_well_as_the_gap() -> None:
    """At 1e5 steps, 1,500 steps after a t2 of 40,000 is not late: t4/t2 = 1.04."""
    stream: Stream = [(0, 0.0, 0.0), (20_000, 0.6, 0.1), (40_000, 1.0, 0.3)]
    stream += [(40_500, 1.0, 0.5), (41_000, 1.0, 0.8), (41_500, 1.0, 0.97)]
    detector, events = feed(stream, final_step=100_000)
    assert detector.outcome == "comprehension"
    [outcome] = outcome_events(events)
    assert outcome["gap"] == 1500 and outcome["ratio"] == 1.038
    assert "but t4/t2 = 1.04 ≤ 2.0" in outcome["detail"]
    gap_only, _ = feed(stream, Detector(grokking_ratio=1.0), final_step=100_000)
    assert gap_only.outcome == "grokking"


def test_t2_at_step_zero_has_no_ratio_limit() -> None:
    stream: Stream = [(0, 1.0, 0.1)] + [(s, 1.0, 0.1) for s in range(100, 2000, 100)]
    detector, events = feed([*stream, (2000, 1.0, 0.99)], final_step=3000)
    assert detector.outcome == "grokking"
    assert outcome_events(events)[0]["ratio"] is None


def test_custom_comprehension_rise_moves_t3() -> None:
    stream: Stream = [(0, 0.0, 0.0), (100, 1.0, 0.1)]
    stream += [(step, 1.0, 0.1) for step in range(200, 1000, 100)]
    stream += [(1000, 1.0, 0.25), (1100, 1.0, 0.5), (3000, 1.0, 0.99)]
    assert feed(stream)[0].marks["t3"] == 1000
    assert feed(stream, Detector(comprehension_rise=0.3))[0].marks["t3"] == 1100


# --- robustness of the stream ------------------------------------------------------------


def test_records_without_accuracies_are_ignored() -> None:
    detector = PhaseDetector()
    assert detector.update(1, {"step": 1, "loss": 0.5}) == []
    assert detector.update(2, {"step": 2, "train_acc": 1.0}) == []
    assert detector.marks == {}


def test_marks_never_move_once_set() -> None:
    stream = grokking_stream() + [(10_000, 0.1, 0.1), (11_000, 1.0, 1.0)]
    detector, events = feed(stream)
    assert detector.marks == {"t1": 100, "t2": 200, "t3": 6000, "t4": 8000}
    assert len(events) == 5


# --- replay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        grokking_stream(),
        [(0, 0.0, 0.0), (100, 0.7, 0.2), (200, 1.0, 0.5), (300, 1.0, 0.96)],
        [(0, 0.0, 0.0), (100, 1.0, 0.1), (200, 1.0, 0.1)],
        [(0, 0.0, 0.0), (100, 0.2, 0.1)],
    ],
    ids=["grokking", "comprehension", "memorization", "confusion"],
)
def test_replay_gives_the_same_events_as_live_updates(stream: Stream) -> None:
    live, live_events = feed(stream, final_step=20_000)
    # a stored stream also holds per-step loss-only records between the probes
    stored: list[dict[str, Any]] = []
    for record in records(stream):
        stored.append({"step": record["step"] - 1, "loss": 0.1})
        stored.append(record)
    replayed, replay_events = replay(stored, Detector(), final_step=20_000)
    assert replay_events == live_events
    assert replayed.marks == live.marks and replayed.outcome == live.outcome
    # without final_step the stream is not finished
    _, unfinished = replay(stored, Detector())
    assert unfinished == [e for e in live_events if e["step"] != 20_000 or e["kind"] != "outcome"]


def test_replay_with_other_thresholds_redecides() -> None:
    _, stored_events = feed(grokking_stream(), final_step=10_000)
    assert outcome_events(stored_events)[0]["detail"].startswith("grokking")
    detector, events = replay(records(grokking_stream()), Detector(grokking_gap=20_000), 10_000)
    assert detector.outcome == "comprehension"
    assert all(event["thresholds"]["grokking_gap"] == 20_000 for event in events)


# --- early-loss statistics (seed 003) ----------------------------------------------------

EARLY = {"forecast/m0": 0.0123, "forecast/low_freq_amp": 0.456}


def test_forecast_records_the_numbers_and_no_verdict() -> None:
    detector = PhaseDetector(Detector())
    [event] = detector.record_forecast(400, EARLY)
    assert event["kind"] == "forecast" and event["step"] == 400
    assert event["forecast_m0"] == 0.0123 and event["forecast_low_freq_amp"] == 0.456
    assert "m₀ = Var(loss) = 0.0123" in event["detail"] and "no threshold" in event["detail"]
    assert "will_grok" not in event
    # the outcome is never scored against it
    events = []
    for record in records(grokking_stream()):
        events += detector.update(record["step"], record)
    events += detector.finish(10_000)
    assert kinds(events) == ["t1", "t2", "t3", "t4", "outcome"]
    assert detector.forecast_summary() == {"forecast_m0": 0.0123, "forecast_low_freq_amp": 0.456}


def test_replay_records_the_forecast_from_the_stream() -> None:
    stream = [{"step": 400, "loss": 0.5, **EARLY}, *records(grokking_stream())[5:]]
    detector, events = replay(stream, Detector(), final_step=10_000)
    assert [e["step"] for e in events if e["kind"] == "forecast"] == [400]
    assert detector.forecast_summary()["forecast_m0"] == 0.0123
    assert "forecast_scored" not in kinds(events)


def test_replay_of_an_old_stream_with_the_retired_forecast_keys() -> None:
    old = {"step": 400, "loss": 0.5, "forecast/oscillation": 0.3, "forecast/activity": 2.0}
    detector, events = replay([old, *records(grokking_stream())], Detector(), 10_000)
    assert detector.outcome == "grokking"
    assert not {"forecast", "forecast_scored"} & set(kinds(events))
    assert detector.forecast_summary() == {}


def test_configs_with_the_retired_forecast_threshold_still_load() -> None:
    from grokterm.presets import build_experiment

    assert Detector.model_validate({"forecast_threshold": 0.1, "grokking_gap": 7}).grokking_gap == 7
    exp = build_experiment({"detector": {"forecast_threshold": 0.2}})
    assert "forecast_threshold" not in exp.detector.model_dump()


def test_trap_herald_reports_traps_per_shuffle() -> None:
    stream = records(grokking_stream())
    stream += [
        {"step": 10_000, "train_acc": 1.0, "test_acc": 0.99, "traps_total": 0.4},
        {"step": 11_000, "train_acc": 1.0, "test_acc": 0.5},
        {"step": 12_000, "train_acc": 1.0, "test_acc": 0.4},
    ]
    _, events = replay(stream, Detector(), final_step=12_000)
    collapse = next(e for e in events if e["kind"] == "anti_grokking")
    assert "traps since step 10000 (0.4 trap(s) per shuffle)" in collapse["detail"]
