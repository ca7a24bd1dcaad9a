"""Liu et al. 2022's toy: unordered a + b pairs, summed embeddings, nearest-template output."""

from __future__ import annotations

import pytest
import torch

from grokterm.engine.loop import build_session, loss_function, train_step
from grokterm.engine.tasks import make_toy_addition
from grokterm.presets import ConfigError, load_experiment


def test_dataset_is_the_55_unordered_pairs_split_45_10():
    _, exp = load_experiment("liu-toy")
    data = make_toy_addition(exp.task, seed=0)
    x = torch.cat([data.train_x, data.test_x])
    y = torch.cat([data.train_y, data.test_y])
    assert len(data.train_x) == 45 and len(data.test_x) == 10
    assert sorted(map(tuple, x.tolist())) == [(a, b) for a in range(10) for b in range(a, 10)]
    assert torch.equal(y, x[:, 0] + x[:, 1]) and data.n_classes == 19


def test_the_presets_split_trains_on_every_sum_it_tests():
    """A sum whose every pair is held out has a template the decoder never learns: test
    accuracy would be capped below Liu's 0.9 bar (seed 0: both pairs of 16, so 0.8)."""
    _, exp = load_experiment("liu-toy")
    data = make_toy_addition(exp.task, exp.seed)
    assert set(data.test_y.tolist()) <= set(data.train_y.tolist())


def test_template_loss_is_the_mse_to_the_true_template():
    _, exp = load_experiment("liu-toy")
    session = build_session(exp)
    model, data = session.model, session.data
    with torch.no_grad():
        out = model.decoder(model.embed(data.train_x[:, 0]) + model.embed(data.train_x[:, 1]))
        expected = ((out - model.templates[data.train_y]) ** 2).mean()
        logits = model(data.train_x)
    loss = loss_function("template_mse", 19, out_dim=30)(logits, data.train_y)
    assert torch.allclose(loss, expected, rtol=1e-5)
    nearest = torch.cdist(out, model.templates).argmin(dim=1)
    assert torch.equal(logits.argmax(dim=1), nearest)


def test_embedding_has_its_own_learning_rate():
    _, exp = load_experiment("liu-toy")
    groups = build_session(exp).optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    assert groups[0]["params"][0].shape == (10, 1)
    session = build_session(exp)
    before = session.model.embed.weight.detach().clone()
    train_step(session)
    assert not torch.equal(before, session.model.embed.weight)


def test_only_the_decoder_is_decayed_as_in_their_code():
    """train_add decays the embedding with weight_decay_reprs = 0 and the decoder with
    weight_decay_dec: sweeping optim.weight_decay must leave the embedding alone."""
    _, exp = load_experiment("liu-toy", ["optim.weight_decay=5"])
    session = build_session(exp)
    embedding, decoder = session.optimizer.param_groups
    assert embedding["params"] == [session.model.embed.weight]
    assert (embedding["weight_decay"], decoder["weight_decay"]) == (0.0, 5.0)
    # with a zero loss gradient only the decay moves a parameter: the embedding stays put
    before = session.model.embed.weight.detach().clone()
    for param in session.model.parameters():
        param.grad = torch.zeros_like(param)
    first_decoder = next(session.model.decoder.parameters())
    decoder_before = first_decoder.detach().clone()
    session.optimizer.step()
    assert torch.equal(session.model.embed.weight, before)
    assert not torch.equal(first_decoder, decoder_before)


def test_embedding_weight_decay_defaults_to_the_shared_one():
    _, exp = load_experiment("modadd-mlp", ["optim.embedding_lr=0.01"])
    groups = build_session(exp).optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [exp.optim.weight_decay] * 2
    _, plain = load_experiment("modadd-mlp")
    assert len(build_session(plain).optimizer.param_groups) == 1


@pytest.mark.parametrize(
    "override",
    ["model.kind=mlp", "schedule.loss=mse", "task.train_pairs=55", "task.kind=modular"],
)
def test_toy_parts_only_go_together(override):
    with pytest.raises(ConfigError):
        load_experiment("liu-toy", [override])
