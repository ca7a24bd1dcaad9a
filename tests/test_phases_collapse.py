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
    assert "no layer with α < 2.0 since memorization" in event["detail"]
    assert "no traps since memorization" in event["detail"]


def mnist_like(peak_then: list[float]) -> list[dict]:
    """Memorized at 100; test climbs to a peak below the default 0.95 bar, then goes on."""
    climb = [0.2, 0.4, 0.6, 0.8, 0.88, 0.89]
    stream = [probe(0, 0.1, 0.1), probe(100, 1.0, 0.15)]
    stream += [probe(1000 * (i + 1), 1.0, test) for i, test in enumerate(climb + peak_then)]
    return stream


def test_collapse_below_the_generalization_bar_is_anti_grokking() -> None:
    """MNIST-1k peaks near 0.9: the collapse is watched from memorization, not from t4."""
    detector, events = replay(mnist_like([0.85, 0.7, 0.6, 0.55]), Detector(), final_step=11000)
    assert "t4" not in detector.marks
    [event] = [e for e in events if e["kind"] == "anti_grokking"]
    assert event["step"] == 9000
    assert "below its peak 0.835 (step 7000)" in event["detail"]


def test_a_steady_climb_to_a_plateau_is_no_collapse() -> None:
    _, events = replay(mnist_like([0.89, 0.88, 0.9, 0.89]), Detector(), final_step=11000)
    assert "anti_grokking" not in kinds(events)


def test_noise_before_generalization_is_no_collapse() -> None:
    """A dip from a low peak is a run that has not generalized yet, not a collapse."""
    stream = [probe(0, 0.1, 0.01), probe(100, 1.0, 0.02)]
    tests = [0.1, 0.3, 0.35, 0.1, 0.05, 0.04, 0.99]
    stream += [probe(1000 * (i + 1), 1.0, test) for i, test in enumerate(tests)]
    _, events = replay(stream, Detector(), final_step=8000)
    assert "anti_grokking" not in kinds(events)
    _, events = replay(stream, Detector(collapse_min_peak=0.2), final_step=8000)
    assert "anti_grokking" in kinds(events)


def sling(norms_before: list[float], spike: float, norms_after: list[float]) -> list[dict]:
    """Loss falls to 1e-3 with probes of the last-layer norm every 10 steps; a spike of
    `spike` at step 35; then probes at 40, 50, ... with norms_after."""
    records: list[dict] = []
    for i, norm in enumerate(norms_before):
        records.append({"step": 10 * i, "loss": 10 ** -(1 + i / 2), "last_layer_norm": norm})
    records.append({"step": 35, "loss": spike})
    for i, norm in enumerate(norms_after):
        records.append({"step": 40 + 10 * i, "loss": 1e-3, "last_layer_norm": norm})
    return records


def slingshots(records: list[dict]) -> list[dict]:
    detector = PhaseDetector(Detector())
    events = []
    for record in records:
        detector.update_loss(record["step"], record["loss"])
        if "last_layer_norm" in record:
            metrics = {"train_acc": 0.0, "test_acc": 0.0, **record}
            events += detector.update(record["step"], metrics)
    return [e for e in events if e["kind"] == "slingshot"]


def test_slingshot_is_a_spike_inside_a_norm_cycle() -> None:
    """Thilak et al.: the last-layer norm grows, the loss spikes, the norm falls."""
    [event] = slingshots(sling([1.0, 1.5, 2.0, 3.0], spike=1.0, norms_after=[3.2, 2.5]))
    assert event["step"] == 35
    assert "1.50 → 2.00 → 3.00 before it" in event["detail"]
    assert "fell from 3.20 to 2.50 after" in event["detail"]


def test_a_loss_jump_without_a_norm_cycle_is_no_slingshot() -> None:
    falling_before = sling([3.0, 2.5, 2.0, 1.5], spike=1.0, norms_after=[1.0, 0.5])
    growing_after = sling([1.0, 1.5, 2.0, 3.0], spike=1.0, norms_after=[3.5, 4.0, 4.5, 3.0])
    assert slingshots(falling_before) == []
    assert slingshots(growing_after) == []


def test_replay_finds_the_same_slingshot() -> None:
    records = [
        {**r, "train_acc": 0.0, "test_acc": 0.0} if "last_layer_norm" in r else r
        for r in sling([1.0, 1.5, 2.0, 3.0], spike=1.0, norms_after=[3.2, 2.5])
    ]
    _, events = replay(records, Detector())
    assert [e["step"] for e in events if e["kind"] == "slingshot"] == [35]


def test_no_slingshot_while_the_loss_is_large_or_noise_is_tiny() -> None:
    """Norms cycle around each jump, yet the loss was never small, or the jump stays tiny."""
    for losses in ([5.0, 1.0, 3.0, 0.5, 2.0], [1e-6, 1e-5, 1e-7, 5e-6]):
        records = [{"step": 0, "loss": 1.0, "last_layer_norm": 1.0}]
        records.append({"step": 1, "loss": 1.0, "last_layer_norm": 2.0})
        records += [{"step": 2 + i, "loss": loss} for i, loss in enumerate(losses)]
        records.append({"step": 20, "loss": losses[-1], "last_layer_norm": 1.0})
        assert slingshots(records) == []
