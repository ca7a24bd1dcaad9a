"""HTSR probes (grokterm/probes/htsr.py): alpha and correlation traps, cross-checked against
WeightWatcher 0.7.7 on models trained briefly here.

weightwatcher is imported only inside the `ww` fixture, which undoes what its import does to
the process (it silences every warning, configures the root logger and prints), and every
analyze() runs with stdout captured. CPU only; about 20-40 s, most of it WeightWatcher's
randomize=True.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from grokterm.engine.models import build_model
from grokterm.engine.tasks import make_dataset
from grokterm.presets import load_experiment
from grokterm.probes import htsr

ORACLE_VERSION = "0.7.7"  # the WeightWatcher these comparisons were made against
PRESETS = {"modadd-mlp": ["task.p=31"], "digits-mlp": [], "nanda": ["task.p=31"]}
FIT_COLUMNS = ("alpha", "D", "xmin", "sigma", "alpha_weighted", "log_spectral_norm", "stable_rank")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch and BLAS on one thread: WeightWatcher's SciPy SVDs and torch's pool otherwise
    over-subscribe a 2-core machine badly."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1)
    with limits:
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ww():
    """The weightwatcher module, imported without leaking its side effects."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = list(warnings.filters)
    ww_logger = logging.getLogger("weightwatcher")
    ww_logger.setLevel(logging.ERROR)
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            with contextlib.redirect_stderr(err):
                import weightwatcher
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    ww_logger.setLevel(logging.ERROR)  # the module resets it to WARNING
    assert list(warnings.filters) == filters
    assert ("ignore", None, Warning, None, 0) not in warnings.filters or (
        ("ignore", None, Warning, None, 0) in filters
    )
    assert root.handlers == handlers and root.level == level
    assert weightwatcher.__version__ == ORACLE_VERSION
    return weightwatcher


def analyze(ww, model: nn.Module, **kwargs):
    """WeightWatcher(model).analyze(**kwargs), quietly; fails if it leaked warning filters or
    touched the root logger."""
    root = logging.getLogger()
    filters, handlers, level = list(warnings.filters), list(root.handlers), root.level
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pandas deprecations, scoped to this call
            details = ww.WeightWatcher(model=model).analyze(**kwargs)
    assert list(warnings.filters) == filters
    assert root.handlers == handlers and root.level == level
    return details


def train(preset: str, overrides: list[str], steps: int) -> nn.Module:
    """A short real run of a preset: its model, data and optimizer, full batch, CPU."""
    _, exp = load_experiment(preset, [*overrides, "device=cpu"])
    torch.manual_seed(exp.seed)
    data = make_dataset(exp.task, exp.seed)
    model = build_model(
        exp.model, vocab_size=data.vocab_size, input_dim=data.input_dim, n_classes=data.n_classes
    )
    o = exp.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay
    )
    loss = torch.zeros(())
    for _ in range(steps):
        logits = model(data.train_x)
        if exp.schedule.loss == "mse":
            target = nn.functional.one_hot(data.train_y, data.n_classes).to(logits.dtype)
            loss = nn.functional.mse_loss(logits, target)
        else:
            loss = nn.functional.cross_entropy(logits, data.train_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert math.isfinite(loss.item())
    return model


@pytest.fixture(scope="module")
def trained_models() -> dict[str, nn.Module]:
    return {
        **{f"{name}@init": train(name, overrides, 0) for name, overrides in PRESETS.items()},
        # EmbeddingMLP on (a+b) mod 31: embed 32x128, 256x256, 31x256
        "modadd-mlp": train("modadd-mlp", ["task.p=31", "model.hidden=[256]"], 200),
        # image MLP 64-200-200-10 on sklearn digits: a 10-unit layer (small-n fit), a 200x200
        "digits-mlp": train("digits-mlp", [], 200),
        # Nanda's 1-layer transformer on (a+b) mod 31: square Q/K/V/O, 3x128 pos_embed
        "transformer": train("nanda", ["task.p=31"], 50),
    }


def analysed_by_ww(model: nn.Module, details) -> dict[str, object]:
    """WeightWatcher's rows by our parameter name (module longname + '.weight')."""
    names = dict(model.named_parameters())
    rows = {f"{row.longname}.weight": row for _, row in details.iterrows()}
    assert set(rows) <= set(names)
    return rows


def module_weights(model: nn.Module) -> set[str]:
    """Parameters WeightWatcher can see: weights of Linear and Embedding modules."""
    return {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | nn.Embedding)
    }


def test_oracle_version_is_the_pinned_one():
    """pyproject and constraints.txt both pin the version the oracle assertions hold for, so
    a new WeightWatcher release cannot reach a fresh install and break them."""
    root = Path(__file__).resolve().parent.parent
    with open(root / "pyproject.toml", "rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    pins = [d.split("#")[0].replace(" ", "") for d in dependencies if d.startswith("weightwatcher")]
    assert pins == [f"weightwatcher=={ORACLE_VERSION}"]
    constraints = (root / "constraints.txt").read_text().splitlines()
    assert f"weightwatcher=={ORACLE_VERSION}" in constraints


# --- layer matrices, ESD ------------------------------------------------------------------


def test_layer_matrices_are_detached_copies_and_split_fused_qkv():
    model = nn.Sequential(nn.Embedding(20, 16), nn.MultiheadAttention(16, 4), nn.Linear(16, 5))
    mats = htsr.layer_matrices(model)
    assert set(mats) == {
        "0.weight",
        "1.in_proj_weight.q",
        "1.in_proj_weight.k",
        "1.in_proj_weight.v",
        "1.out_proj.weight",
        "2.weight",
    }
    fused = model[1].in_proj_weight.detach()
    assert torch.equal(torch.cat([mats[f"1.in_proj_weight.{p}"] for p in "qkv"]), fused)
    assert all(m.shape == (16, 16) for n, m in mats.items() if "in_proj" in n)
    mats["2.weight"].zero_()
    assert model[2].weight.abs().sum() > 0 and not mats["2.weight"].requires_grad


def test_esd_is_squared_singular_values_without_tiny_ones():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(50, 20, generator=gen, dtype=torch.float64)
    w[:, -3:] = 0  # rank 17
    sv2 = np.sort(np.linalg.svd(w.numpy(), compute_uv=False) ** 2)
    spectra = htsr.esd({"a": w, "b": w.T}, float64=True)
    for evals in spectra.values():
        assert len(evals) == 17
        np.testing.assert_allclose(evals, sv2[3:], rtol=1e-12)
    full = htsr.esd(w.float(), thresh=None)
    assert len(full) == 20 and full.min() >= 0
    np.testing.assert_allclose(full[3:], sv2[3:], rtol=1e-4)


# --- the power-law fit --------------------------------------------------------------------


def planted_power_law_matrix(alpha: float, n: int, m: int, seed: int) -> torch.Tensor:
    """W = U diag(√λ) Vᵀ with λ drawn from ρ(λ) ∝ λ^-alpha on [1, ∞)."""
    rng = np.random.default_rng(seed)
    evals = rng.uniform(size=m) ** (-1 / (alpha - 1))
    u, _ = np.linalg.qr(rng.normal(size=(n, m)))
    v, _ = np.linalg.qr(rng.normal(size=(m, m)))
    return torch.from_numpy(u @ np.diag(np.sqrt(evals)) @ v.T)


def test_planted_power_law_tail_is_recovered():
    w = planted_power_law_matrix(alpha=3.0, n=800, m=400, seed=0)
    fit = htsr.fit_power_law(htsr.esd(w, float64=True, thresh=None))
    assert fit["alpha"] == pytest.approx(3.0, abs=0.3)
    assert fit["sigma"] == pytest.approx((fit["alpha"] - 1) / math.sqrt(fit["num_pl_spikes"]))
    assert fit["alpha_weighted"] == pytest.approx(fit["alpha"] * math.log10(fit["lambda_max"]))
    # straight from samples, and with a second exponent
    sample = np.random.default_rng(1).pareto(1.5, size=2000) + 1.0  # ρ ∝ x^-2.5
    assert htsr.fit_power_law(sample)["alpha"] == pytest.approx(2.5, abs=0.15)


def test_degenerate_layers_give_nan():
    few = htsr.fit_power_law(np.array([1.0, 2.0, 3.0, 5.0, 8.0]))
    assert math.isnan(few["alpha"]) and math.isnan(few["alpha_weighted"])
    assert few["log_spectral_norm"] == pytest.approx(math.log10(8.0))
    assert few["stable_rank"] == pytest.approx(19 / 8)
    mostly_zero = htsr.fit_power_law(np.r_[np.zeros(9), 2.0])
    assert math.isnan(mostly_zero["alpha"])
    assert math.isnan(htsr.fit_power_law(np.empty(0))["alpha"])


def test_float32_redoes_layers_whose_cut_it_cannot_place():
    """A rank-5 matrix with λmax ~ 1e3: float32 round-off (~1e-4) would add spurious
    eigenvalues above the 1e-5 cut, so the float32 path redoes it in float64."""
    gen = torch.Generator().manual_seed(2)
    low_rank = torch.randn(50, 5, generator=gen) @ torch.randn(5, 16, generator=gen) * 3
    spurious = htsr.esd(low_rank, float64=False)
    assert len(spurious) > 5 and len(htsr.esd(low_rank, float64=True)) == 5
    full_rank = torch.randn(300, 120, generator=gen)
    mats = {"low": low_rank, "full": full_rank}
    fits32, fits64 = htsr.layer_fits(mats), htsr.layer_fits(mats, float64=True)
    assert fits32["low"] == fits64["low"]
    assert fits32["full"]["alpha"] == pytest.approx(fits64["full"]["alpha"], abs=1e-3)
    assert fits32["full"]["num_pl_spikes"] == fits64["full"]["num_pl_spikes"]


def test_non_finite_weights_give_nan_not_errors():
    model = nn.Sequential(nn.Linear(30, 40), nn.Linear(40, 120))
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alphas, traps = htsr.htsr_metrics(model), htsr.traps_metrics(model, seed=0)
    assert math.isnan(alphas["alpha/1.weight"]) and math.isfinite(alphas["alpha/0.weight"])
    assert math.isnan(traps["traps/1.weight"]) and math.isfinite(traps["traps_total"])


def test_htsr_metrics_names_and_summary():
    model = build_model(
        load_experiment("nanda", ["task.p=31"])[1].model, vocab_size=32, input_dim=0, n_classes=31
    )
    out = htsr.htsr_metrics(model)
    layers = list(htsr.layer_matrices(model))
    for key in htsr.HTSR_KEYS:
        assert {k for k in out if k.startswith(f"{key}/")} == {f"{key}/{n}" for n in layers}
    assert math.isnan(out["alpha/pos_embed"])  # 3 x 128: below min_evals
    finite = [out[f"alpha/{n}"] for n in layers if math.isfinite(out[f"alpha/{n}"])]
    assert len(finite) == len(layers) - 1
    assert out["alpha_mean"] == pytest.approx(np.mean(finite))
    assert out["alpha_min"] == min(finite)
    assert all(isinstance(v, float) for v in out.values())


# --- agreement with WeightWatcher ---------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["modadd-mlp", "digits-mlp", "transformer", *(f"{p}@init" for p in PRESETS)]
)
def test_alpha_matches_weightwatcher_on_trained_models(ww, trained_models, name):
    model = trained_models[name]
    rows = analysed_by_ww(model, analyze(ww, model))
    fits = htsr.layer_fits(htsr.layer_matrices(model), float64=True)
    ours = {n for n, fit in fits.items() if math.isfinite(fit["alpha"])}
    assert set(rows) == ours & module_weights(model)
    assert ours - module_weights(model) == set()  # no raw nn.Parameter here reaches 8 evals
    worst = 0.0
    for layer, row in rows.items():
        fit = fits[layer]
        worst = max(worst, abs(fit["alpha"] - row["alpha"]))
        assert fit["num_pl_spikes"] == row["num_pl_spikes"], layer
        for column in FIT_COLUMNS:
            assert fit[column] == pytest.approx(row[column], rel=1e-9, abs=1e-9), (layer, column)
    assert worst <= 1e-6, f"max |Δα| = {worst:.2e}"
    # the float32 default stays close
    fits32 = htsr.layer_fits(htsr.layer_matrices(model), float64=False)
    worst32 = max(abs(fits32[layer]["alpha"] - row["alpha"]) for layer, row in rows.items())
    assert worst32 <= 0.05, f"float32 max |Δα| = {worst32:.2e}"
    metrics = htsr.htsr_metrics(model, float64=True)
    for layer, row in rows.items():
        assert metrics[f"alpha/{layer}"] == pytest.approx(row["alpha"], abs=1e-6)
        assert metrics[f"alpha_tail/{layer}"] == row["num_pl_spikes"]


def compare_traps(ww, model: nn.Module, seed: int) -> dict[str, int]:
    """rand_num_spikes of analyze(randomize=True) vs ours on the same shuffles."""
    np.random.seed(seed)
    rows = analysed_by_ww(model, analyze(ww, model, randomize=True))
    ww_state = np.random.get_state()
    mats = htsr.layer_matrices(model)
    np.random.seed(seed)
    ours = htsr.layer_traps({n: mats[n] for n in rows}, shuffle_source=np.random.shuffle)
    # the same number of draws from the global RNG as WeightWatcher
    assert np.array_equal(np.random.get_state()[1], ww_state[1])
    assert np.random.get_state()[2] == ww_state[2]
    for layer, row in rows.items():
        assert ours[layer]["rand_num_spikes"] == row["rand_num_spikes"], layer
        assert ours[layer]["rand_sigma_mp"] == pytest.approx(row["rand_sigma_mp"], rel=1e-9)
        assert ours[layer]["rand_bulk_max"] == pytest.approx(row["rand_bulk_max"], rel=1e-9)
    return {layer: row["rand_num_spikes"] for layer, row in rows.items()}


@pytest.mark.parametrize("name", ["modadd-mlp", "digits-mlp", "transformer"])
def test_traps_match_weightwatcher_on_trained_models(ww, trained_models, name):
    compare_traps(ww, trained_models[name], seed=7)


def planted(n_in: int, n_out: int, n_huge: int, seed: int) -> nn.Linear:
    """A Gaussian layer with a few atypically huge weights."""
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=False)
    with torch.no_grad():
        layer.weight.normal_(0, n_in**-0.5, generator=gen)
        flat = layer.weight.view(-1)
        flat[torch.randperm(flat.numel(), generator=gen)[:n_huge]] = 40 * n_in**-0.5
    return layer


def test_planted_huge_weights_are_traps(ww):
    one_replica = planted(100, 200, n_huge=3, seed=0)  # min(shape) = 100: one shuffle
    five_replicas = planted(60, 150, n_huge=2, seed=1)  # min(shape) < 100: five pooled
    # WeightWatcher counts over the pooled spectrum: a huge weight is a trap in every copy
    for layer, expected in ((one_replica, 3), (five_replicas, 2 * 5)):
        result = htsr.count_traps(layer.weight, np.random.default_rng(0))
        assert result["replicas"] == (1 if layer is one_replica else 5)
        assert abs(result["rand_num_spikes"] - expected) <= 1
        counts = compare_traps(ww, nn.Sequential(layer), seed=3)
        assert counts["0.weight"] >= 1
    clean = nn.Linear(100, 200, bias=False)
    nn.init.normal_(clean.weight, 0, 0.1)
    assert htsr.count_traps(clean.weight, np.random.default_rng(0))["rand_num_spikes"] == 0


def test_mp_fit_matches_weightwatchers_fit_density(ww):
    """Same pooled ESD in: WeightWatcher's KDE-refitting brute force + fmin gives the same σ
    and spike count as the KDE-once version."""
    from weightwatcher import RMT_Util

    rng = np.random.default_rng(4)
    for n, m, df in ((160, 160, 3), (300, 120, 2), (90, 40, 100)):
        w = rng.standard_t(df, size=(n, m))
        evals = np.sort(np.linalg.svd(w, compute_uv=False) ** 2)
        q = n / m
        scaled = evals * (len(evals) / np.sum(evals))
        with contextlib.redirect_stdout(io.StringIO()):
            sigma, _ = RMT_Util.fit_density_with_range(scaled, q, bw=0.1)
        ours = htsr.fit_mp_bulk(evals, n, m)
        assert ours["sigma_mp"] == pytest.approx(sigma, rel=1e-9)
        bulk_max = (sigma * (1 + 1 / np.sqrt(q))) ** 2
        edge = bulk_max + np.sqrt(1 / np.sqrt(q) * bulk_max ** (2 / 3) * m ** (-2 / 3))
        assert ours["num_spikes"] == np.count_nonzero(scaled > edge)


# --- the live probe -----------------------------------------------------------------------


def test_traps_metrics_seeded_and_leave_global_rng_alone(trained_models):
    model = trained_models["digits-mlp"]
    with torch.no_grad():
        model.mlp[2].weight[0, :3] = 50.0  # plant traps in the 200x200 layer
    np.random.seed(123)
    state = np.random.get_state()
    first = htsr.traps_metrics(model, seed=5)
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert first == htsr.traps_metrics(model, seed=5)
    layers = htsr.layer_matrices(model)
    assert set(first) == {f"traps/{n}" for n in layers} | {"traps_total"}
    assert first["traps/mlp.2.weight"] >= 1
    # the 200x200 layer has a single shuffle; the narrow ones pool 5, counted once each
    replicas = {n: 5 if min(w.shape) < 100 else 1 for n, w in layers.items()}
    per_shuffle = [first[f"traps/{n}"] / replicas[n] for n in layers]
    assert first["traps_total"] == pytest.approx(sum(c for c in per_shuffle if math.isfinite(c)))


def test_traps_total_counts_a_trap_once_where_shuffles_are_pooled():
    """A narrow layer pools 5 shuffles (WeightWatcher's rand_num_spikes counts one trap up to
    5 times there); traps_total reports traps per shuffle."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(60, 80), nn.Linear(80, 200))
    with torch.no_grad():
        model[0].weight[3, 7] = 40.0  # one planted trap
    out = htsr.traps_metrics(model, seed=0)
    assert out["traps/0.weight"] == 5.0 and out["traps/1.weight"] == 0.0
    assert out["traps_total"] == 1.0


def test_probe_is_quiet_and_never_imports_weightwatcher():
    code = (
        "import sys, torch\n"
        "from torch import nn\n"
        "from grokterm.probes import htsr\n"
        "m = nn.Sequential(nn.Embedding(40, 16), nn.Linear(16, 12), nn.Linear(12, 5))\n"
        "htsr.htsr_metrics(m); htsr.htsr_metrics(m, float64=True); htsr.traps_metrics(m, 0)\n"
        "sys.stderr.write(str('weightwatcher' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == "False"
