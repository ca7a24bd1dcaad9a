"""Anti-grokking and slingshots on synthetic metric streams."""

from __future__ import annotations

from grokterm.config import Detector
from grokterm.phases import PhaseDetector, replay


def probe(step: int, train: float, test: float, **extra: float) -> dict:
    return {"step": step, "train_acc": train, "test_acc": test, **extra}


def grok_then(tail: list[dict]) -> list[dict]:
    head = [probe(0, 0.0, 0.0), probe(100, 1.0, 0.05), probe(3000, 1.0, 0.5)]
    head += [probe(5000 + 500 * i, 1.0, 0.99, **{"alpha/mlp.0.weight": 3.1}) for i in range(6)]
    return head + tail


def kinds(events: list[dict]) -> list[str]:
    return [event["kind"] for event in events]


def test_planted_collapse_is_found_with_its_heralds() -> None:
    tail = [
        probe(9000, 1.0, 0.98, **{"alpha/mlp.0.weight": 1.7}),
        probe(10000, 1.0, 0.97, **{"alpha/mlp.0.weight": 1.6}, traps_total=2),
        probe(11000, 1.0, 0.85, **{"alpha/mlp.0.weight": 1.5}, traps_total=3),
        probe(12000, 1.0, 0.60, **{"alpha/mlp.0.weight": 1.5}, traps_total=3),
        probe(13000, 1.0, 0.55),
    ]
    _, events = replay(grok_then(tail), Detector(), final_step=13000)
    assert kinds(events).count("anti_grokking") == 1
    event = next(e for e in events if e["kind"] == "anti_grokking")
    assert event["step"] == 12000
    assert "α < 2.0 since step 9000" in event["detail"]
    assert "3000 steps before" in event["detail"]
    assert "traps since step 10000" in event["detail"]


def test_clean_stream_has_no_collapse() -> None:
    tail = [probe(9000 + 1000 * i, 1.0, 0.99 - 0.01 * (i % 3)) for i in range(10)]
    _, events = replay(grok_then(tail), Detector(), final_step=20000)
    assert "anti_grokking" not in kinds(events)
    assert kinds(events).count("outcome") == 1


def test_collapse_needs_perfect_train_accuracy() -> None:
    tail = [probe(9000 + 1000 * i, 0.5, 0.3) for i in range(5)]
    _, events = replay(grok_then(tail), Detector(), final_step=20000)
    assert "anti_grokking" not in kinds(events)


def test_collapse_without_heralds_says_so() -> None:
    tail = [probe(9000, 1.0, 0.6), probe(10000, 1.0, 0.5)]
    _, events = replay(grok_then(tail), Detector(), final_step=10000)
    event = next(e for e in events if e["kind"] == "anti_grokking")
    assert "no a layer with α < 2.0 since generalization" in event["detail"]
    assert "no traps since generalization" in event["detail"]


def test_slingshot_is_a_spike_after_the_loss_was_small() -> None:
    detector = PhaseDetector(Detector())
    losses = [2.0, 1.0, 0.1, 0.004, 0.002, 0.0025, 0.05, 0.01, 0.001, 0.0005, 0.3]
    events = [e for step, loss in enumerate(losses) for e in detector.update_loss(step, loss)]
    assert [e["step"] for e in events] == [6, 10]
    assert "25× its running minimum" in events[0]["detail"]


def test_no_slingshot_while_the_loss_is_large_or_noise_is_tiny() -> None:
    detector = PhaseDetector(Detector())
    big = [5.0, 1.0, 3.0, 0.5, 2.0]
    tiny = [1e-6, 1e-5, 1e-7, 5e-6]  # 10x jumps that stay below the floor
    events = [e for step, loss in enumerate(big + tiny) for e in detector.update_loss(step, loss)]
    assert events == []
