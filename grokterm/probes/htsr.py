"""HTSR probes: power-law alpha of each weight matrix's ESD, and correlation traps.

A re-implementation of WeightWatcher 0.7.7's numbers (``analyze()`` with its defaults, and
``randomize=True``'s ``rand_num_spikes``) that imports only torch, numpy and scipy and never
prints. The method, as WeightWatcher runs it on CPU:

* **ESD.** The eigenvalues of WᵀW with no 1/N (the squared singular values), here computed
  as ``eigvalsh`` of the smaller Gram matrix, batched by size. A layer is analysed when
  ``min(W.shape) >= min_evals`` (8), ``min(W.shape) <= 15000`` and ``max(W.shape) <= 50000``.
* **Alpha.** Eigenvalues ≤ 1e-5 are dropped; for every candidate xmin (each eigenvalue but the
  largest) the continuous MLE α = 1 + n / Σ log(λ/xmin) over the n eigenvalues ≥ xmin, and the
  Kolmogorov–Smirnov distance D between the tail and that power law; the xmin with the
  smallest D wins. Below 20 eigenvalues WeightWatcher 0.7.7 switches to a "small-n" fit:
  α = 1 + (n − 1)/Σ log(λ/xmin), only tails of ≥ 8 eigenvalues, and a fallback to the whole
  spectrum; it computes an objective D − 0.868/√n there but then picks argmin D anyway, which
  is what is replicated here. σ = (α − 1)/√n, alpha_weighted = α·log10 λmax.
* **Traps** (``randomize=True``). The elements of W are shuffled (5 shuffled copies, their
  eigenvalues pooled, when min(W.shape) < 100), the pooled ESD is rescaled to unit mean, a
  Marchenko–Pastur density (quarter circle of the singular values when W is square) is fitted
  to a linear-kernel KDE (bandwidth 0.1) of it by a 195-point grid over σ and a Nelder–Mead
  polish, and the pooled eigenvalues above the bulk edge λ+ plus the Tracy–Widom margin
  √(Q^{-1/2} λ+^{2/3} M^{-2/3}) are counted (so with 5 copies one huge weight counts ~5 times,
  as in WeightWatcher). WeightWatcher refits the KDE for every σ it tries; the KDE does not
  depend on σ, so here it is computed once, in closed form.

Differences from WeightWatcher: layers that fail a fit give NaN (WeightWatcher: −1); a
float64 model's weights are used as they are (WeightWatcher rounds them to float32); with
``float64=False`` the Gram matrix and its eigenvalues are float32, and a layer is redone in
float64 when round-off could move eigenvalues across the 1e-5 cut in a way that matters
(otherwise alphas differ from float64's by ~1e-6 typically, up to ~1e-3); and a live probe
shuffles with its own seeded ``numpy.random.Generator`` (WeightWatcher uses the global NumPy
RNG; ``shuffle_source`` reproduces its sequence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import nn

EVALS_THRESH = 1e-5  # eigenvalues at or below this are dropped before the fit
MIN_EVALS = 8  # WeightWatcher's default min_evals: layers with min(shape) below are skipped
MAX_EVALS = 15000  # ... and layers with min(shape) above
MAX_N = 50000  # ... and layers with max(shape) above
SMALL_N = 20  # below this many eigenvalues, the small-n fit
SMALL_N_MIN_TAIL = 8  # the small-n fit's shortest tail
KDE_BANDWIDTH = 0.1
KDE_POINTS = 1000
KDE_THRESH = 0.01  # KDE points with a density below this do not enter the MP residual
F32_NOISE = 4 * float(np.finfo(np.float32).eps)  # float32 Gram eigenvalue error / (√N·λmax)
KS_CHUNK = 1 << 20  # elements of one block of the KS-distance matrix

Matrix = torch.Tensor | np.ndarray
ShuffleSource = Callable[[np.ndarray], Any]

__all__ = [
    "count_traps",
    "esd",
    "fit_mp_bulk",
    "fit_power_law",
    "htsr_metrics",
    "layer_matrices",
    "layer_traps",
    "traps_metrics",
]


# --- weight matrices ------------------------------------------------------------------------


def layer_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every 2-D weight (embeddings included), detached and copied to the CPU, by parameter
    name. A fused attention projection ``…in_proj_weight`` of shape (3d, d) is split into
    ``….q``, ``….k`` and ``….v``."""
    out: dict[str, torch.Tensor] = {}
    for name, param in model.named_parameters():
        if param.ndim != 2:
            continue
        weight = param.detach().to("cpu", copy=True)
        if name.endswith("in_proj_weight") and weight.shape[0] == 3 * weight.shape[1]:
            for part, chunk in zip("qkv", weight.chunk(3, dim=0), strict=True):
                out[f"{name}.{part}"] = chunk.contiguous()
        else:
            out[name] = weight
    return out


def analysable(shape: tuple[int, ...], min_evals: int = MIN_EVALS) -> bool:
    """Whether WeightWatcher analyses a Linear/Embedding weight of this shape."""
    m, n = min(shape), max(shape)
    return m >= max(min_evals, 1) and m <= MAX_EVALS and n <= MAX_N


def _as_tensor(matrix: Matrix) -> torch.Tensor:
    if isinstance(matrix, np.ndarray):
        return torch.from_numpy(matrix)
    return matrix.detach().cpu()


# --- the ESD --------------------------------------------------------------------------------


def _gram(matrix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    w = matrix.to(dtype)
    return w.mT @ w if w.shape[0] >= w.shape[1] else w @ w.mT


def _eigvalsh_by_size(grams: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Ascending eigenvalues of symmetric matrices, one batched call per matrix size."""
    by_size: dict[int, list[str]] = {}
    for name, gram in grams.items():
        by_size.setdefault(gram.shape[-1], []).append(name)
    out: dict[str, np.ndarray] = {}
    for names in by_size.values():
        evals = torch.linalg.eigvalsh(torch.stack([grams[name] for name in names]))
        evals = evals.to(torch.float64).numpy()
        for name, row in zip(names, evals, strict=True):
            out[name] = row
    return out


def esd(
    matrices: Mapping[str, Matrix] | Matrix,
    float64: bool = False,
    thresh: float | None = EVALS_THRESH,
) -> dict[str, np.ndarray] | np.ndarray:
    """WeightWatcher's ESD: eigenvalues of WᵀW (squared singular values, no 1/N), ascending,
    as float64 arrays. The Gram matrix and its eigenvalues are computed in float64 when asked,
    else in float32 (absolute round-off up to ~4·√N·ε₃₂·λmax, N = max(W.shape)).
    Eigenvalues ≤ ``thresh`` are dropped (WeightWatcher's 1e-5); with ``thresh=None`` all
    min(W.shape) are kept (negative round-off clipped to 0). A matrix with NaN or infinite
    entries gets NaN eigenvalues (none, once thresholded).

    Given one matrix, returns one array; given a mapping, a dict by the same keys."""
    single = not isinstance(matrices, Mapping)
    items = {"": matrices} if single else matrices
    dtype = torch.float64 if float64 else torch.float32
    tensors = {name: _as_tensor(w) for name, w in items.items()}
    finite = {name: w for name, w in tensors.items() if bool(torch.isfinite(w).all())}
    spectra = _eigvalsh_by_size({name: _gram(w, dtype) for name, w in finite.items()})
    out = {}
    for name, w in tensors.items():
        evals = spectra.get(name, np.full(min(w.shape), np.nan))  # NaN/inf weights: NaN
        out[name] = np.maximum(evals, 0.0) if thresh is None else evals[evals > thresh]
    return out[""] if single else out


def _f32_unsure(evals: np.ndarray, n: int, fit: dict[str, float]) -> bool:
    """Whether a fit on a float32 ESD (all eigenvalues, ascending) of an n-row-or-column
    matrix may differ materially from the float64 one: float32 round-off puts eigenvalues on
    the wrong side of the 1e-5 cut, and (a) two or more are that close to it (a rank-deficient
    matrix with a large norm: round-off then adds a cluster of spurious eigenvalues), or
    (b) the fit takes its xmin there, or (c) it is near the small-n branch."""
    noise = F32_NOISE * math.sqrt(n) * max(float(evals[-1]), 0.0)
    near = np.abs(evals - EVALS_THRESH) <= noise
    if not near.any():
        return False
    above = int(np.count_nonzero(evals > EVALS_THRESH))
    near_above = int(np.count_nonzero(near & (evals > EVALS_THRESH)))
    return (
        int(near.sum()) >= 2
        or above - near_above < SMALL_N
        or not fit["xmin"] > EVALS_THRESH + noise  # NaN (failed fit) included
    )


# --- the power-law fit ----------------------------------------------------------------------


def _ks_distances(x: np.ndarray, alphas: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each xmin index i in ``rows``: max_k |1 − (x_{i+k}/x_i)^(1−α_i) − k/n_i| over the
    tail x_i ≤ … ≤ x_{N−1} (n_i = N − i), in blocks of at most KS_CHUNK elements."""
    big_n = len(x)
    out = np.empty(len(rows))
    start = 0
    while start < len(rows):
        first = rows[start]
        width = big_n - first
        stop = min(len(rows), start + max(1, KS_CHUNK // max(width, 1)))
        block = rows[start:stop]
        cols = np.arange(first, big_n)
        tail_len = (big_n - block).astype(np.float64)
        offsets = (cols[None, :] - block[:, None]).astype(np.float64)
        ratio = x[None, first:] / x[block, None]
        theory = 1 - ratio ** (-alphas[block, None] + 1)
        diff = np.abs(theory - offsets / tail_len[:, None])
        diff[offsets < 0] = 0.0
        out[start:stop] = diff.max(axis=1)
        start = stop
    return out


def _ww_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """WeightWatcher's WWFit on sorted eigenvalues x (len ≥ 2, all > 0):
    (alpha, xmin, D, sigma)."""
    big_n = len(x)
    log_x = np.log(x)
    suffix = np.cumsum(log_x[::-1])[::-1]  # suffix[i] = Σ_{j ≥ i} log x_j
    idx = np.arange(big_n - 1)
    n = (big_n - idx).astype(np.float64)
    log_sum = suffix[:-1] - n * log_x[:-1]  # Σ log(x_j / x_i) over the tail
    ds = np.ones(big_n - 1)
    if big_n >= SMALL_N:
        alphas = 1 + n / log_sum
        rows = np.flatnonzero(alphas > 1)
        ds[rows] = _ks_distances(x, alphas, rows)
        sigmas = (alphas - 1) / np.sqrt(n)
    else:  # 0.7.7's small-n branch
        usable = (n >= SMALL_N_MIN_TAIL) & (log_sum > 1e-12)
        alphas = np.where(usable, 1.0 + (n - 1.0) / np.where(usable, log_sum, 1.0), 0.0)
        rows = np.flatnonzero(usable & (alphas > 1.0))
        ds[rows] = _ks_distances(x, alphas, rows)
        sigmas = (alphas - 1.0) / np.sqrt(n)
        if len(rows) == 0 and log_sum[0] > 1e-12:  # fallback: the whole spectrum as tail
            alphas[0] = 1.0 + (n[0] - 1.0) / log_sum[0]
            ds[0] = _ks_distances(x, alphas, np.array([0]))[0]
    best = int(np.argmin(ds))
    return float(alphas[best]), float(x[best]), float(ds[best]), float(sigmas[best])


def fit_power_law(
    evals: np.ndarray | torch.Tensor,
    min_evals: int = MIN_EVALS,
    thresh: float = EVALS_THRESH,
) -> dict[str, float]:
    """WeightWatcher's power-law fit (``pl_package='ww'``) of one ESD, plus its norm metrics.

    ``evals`` is the layer's whole ESD (``esd(W, thresh=None)``); eigenvalues ≤ ``thresh``
    are dropped here. With fewer than ``min_evals`` eigenvalues (WeightWatcher skips such a
    layer) or fewer than two above the threshold (its fit fails), the fit values are NaN.

    Returns alpha, xmin, xmax, D, sigma = (α−1)/√n, num_pl_spikes (tail size n),
    alpha_weighted = α·log10 λmax, log_spectral_norm = log10 λmax, stable_rank = Σλ/λmax,
    lambda_max and num_evals."""
    ev = np.asarray(evals, dtype=np.float64).ravel()
    nan = math.nan
    out = {
        "alpha": nan,
        "xmin": nan,
        "xmax": nan,
        "D": nan,
        "sigma": nan,
        "num_pl_spikes": nan,
        "alpha_weighted": nan,
        "log_spectral_norm": nan,
        "stable_rank": nan,
        "lambda_max": nan,
        "num_evals": float(ev.size),
    }
    if ev.size == 0:
        return out
    lambda_max = float(ev.max())
    out["lambda_max"] = lambda_max
    if lambda_max > 0:
        out["log_spectral_norm"] = math.log10(lambda_max)
        out["stable_rank"] = float(ev.sum()) / lambda_max
    x = np.sort(ev[ev > thresh])
    if ev.size < min_evals or len(x) < 2:
        return out
    with np.errstate(all="ignore"):
        alpha, xmin, dist, sigma = _ww_fit(x)
    if math.isnan(alpha):
        return out
    out.update(
        alpha=alpha,
        xmin=xmin,
        xmax=float(x[-1]),
        D=dist,
        sigma=sigma,
        num_pl_spikes=float(np.count_nonzero(ev >= xmin)),
        alpha_weighted=alpha * out["log_spectral_norm"],
    )
    return out


def layer_fits(
    matrices: Mapping[str, Matrix], float64: bool = False, min_evals: int = MIN_EVALS
) -> dict[str, dict[str, float]]:
    """``fit_power_law`` for every matrix. Layers WeightWatcher would skip for their size get
    NaN fit values (and no ESD at all when min(shape) > 15000). With ``float64=False`` the
    ESDs are float32, except for a layer whose float32 fit round-off could change materially
    (eigenvalues within round-off of the 1e-5 cut: see ``_f32_unsure``), which is redone in
    float64."""
    shapes = {name: tuple(w.shape) for name, w in matrices.items()}
    small = {name: w for name, w in matrices.items() if min(shapes[name]) <= MAX_EVALS}
    spectra = esd(small, float64=float64, thresh=None) if small else {}

    def fit(name: str) -> dict[str, float]:
        if name not in spectra:
            return fit_power_law(np.empty(0), min_evals)
        ok = analysable(shapes[name], min_evals)
        return fit_power_law(spectra[name], min_evals if ok else len(spectra[name]) + 1)

    out = {name: fit(name) for name in matrices}
    if not float64:
        redo = {
            name: small[name]
            for name in spectra
            if len(spectra[name]) and _f32_unsure(spectra[name], max(shapes[name]), out[name])
        }
        if redo:
            spectra.update(esd(redo, float64=True, thresh=None))
            out.update({name: fit(name) for name in redo})
    return out


HTSR_KEYS = {
    "alpha": "alpha",
    "alpha_weighted": "alpha_weighted",
    "alpha_tail": "num_pl_spikes",
    "alpha_sigma": "sigma",
    "log_spectral_norm": "log_spectral_norm",
    "stable_rank": "stable_rank",
}


@torch.no_grad()
def htsr_metrics(
    model: nn.Module, float64: bool = False, min_evals: int = MIN_EVALS
) -> dict[str, float]:
    """Named scalars for the metric stream: per 2-D weight ``alpha/<layer>``,
    ``alpha_weighted/…``, ``alpha_tail/…`` (tail size), ``alpha_sigma/…``,
    ``log_spectral_norm/…``, ``stable_rank/…``; and ``alpha_mean``, ``alpha_min`` over the
    layers with a finite alpha (NaN if none). Layers too small to fit give NaN alphas."""
    fits = layer_fits(layer_matrices(model), float64=float64, min_evals=min_evals)
    out: dict[str, float] = {}
    for key, column in HTSR_KEYS.items():
        for name, fit in fits.items():
            out[f"{key}/{name}"] = float(fit[column])
    alphas = [fit["alpha"] for fit in fits.values() if math.isfinite(fit["alpha"])]
    out["alpha_mean"] = float(np.mean(alphas)) if alphas else math.nan
    out["alpha_min"] = float(min(alphas)) if alphas else math.nan
    return out


# --- correlation traps ----------------------------------------------------------------------


def _linear_kde(points: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """sklearn ``KernelDensity(kernel='linear')`` in 1-D, in closed form:
    (1/(n h)) Σ max(0, 1 − |x − x_i|/h), summed only over the grid points near each x_i."""
    step = (grid[-1] - grid[0]) / (len(grid) - 1)
    lo = np.floor((points - bandwidth - grid[0]) / step).astype(np.int64) - 1
    hi = np.ceil((points + bandwidth - grid[0]) / step).astype(np.int64) + 1
    width = int((hi - lo).max()) + 1
    idx = lo[:, None] + np.arange(width)[None, :]
    inside = (idx >= 0) & (idx < len(grid)) & (idx <= hi[:, None])
    idx = np.clip(idx, 0, len(grid) - 1)
    kernel = np.maximum(1.0 - np.abs(grid[idx] - points[:, None]) / bandwidth, 0.0)
    sums = np.bincount(idx[inside], weights=kernel[inside], minlength=len(grid))
    return sums / (len(points) * bandwidth)


class _MPObjective:
    """WeightWatcher's ``resid_mp(sigma, …, allresid=False)`` for a fixed ESD, evaluated for
    a column of σ values at once; the KDE is computed once."""

    def __init__(self, to_fit: np.ndarray, q: float, bandwidth: float = KDE_BANDWIDTH):
        self.q = q
        xde = np.linspace(0, np.max(to_fit) + 0.5, KDE_POINTS)
        yde = _linear_kde(np.sort(to_fit), xde, bandwidth)
        good = yde > KDE_THRESH
        self.n_bad = int(np.count_nonzero(yde < KDE_THRESH))
        self.x, self.y = xde[good], yde[good]
        if len(self.y):
            self.x_peak = self.x[np.argmax(self.y)]
            self.x_max = np.max(self.x)

    def __call__(self, sigma: np.ndarray) -> np.ndarray:
        sigma = np.asarray(sigma, dtype=np.float64).reshape(-1, 1)
        if len(self.y) == 0:
            raise ValueError("the KDE of the ESD is below threshold everywhere")
        x, q = self.x, self.q
        with np.errstate(all="ignore"):
            if q == 1:
                ymp = np.nan_to_num((1 / (np.pi * sigma * sigma)) * np.sqrt(4 - x**2))
                resid = ymp - self.y
            else:
                y = 1 / q
                b = np.power(sigma * (1 + np.sqrt(1 / q)), 2)
                a = np.power(sigma * (1 - np.sqrt(1 / q)), 2)
                density = 1 / (2 * np.pi * sigma * sigma * x * y)
                ymp = np.nan_to_num(density * np.sqrt((b - x) * (x - a)))
                off = (b < self.x_peak) | (b > self.x_max) | (a > self.x_peak)
                resid = np.where(off, 1000.0, ymp - self.y)
        full = np.zeros((len(sigma), resid.shape[1] + self.n_bad))
        full[:, : resid.shape[1]] = resid
        return np.sum(full**2, axis=1)


def fit_mp_bulk(evals: np.ndarray, n: int, m: int) -> dict[str, float]:
    """WeightWatcher's ``mp_fit`` (rescale on) of an ESD of n×m matrices (n ≥ m): σ of the
    best Marchenko–Pastur bulk, the bulk edge λ+ and its Tracy–Widom margin, and the number
    of eigenvalues above λ+ + margin (``num_spikes``). ``evals`` may pool several replicas."""
    q = n / m
    to_plot = np.sort(np.asarray(evals, dtype=np.float64))
    w_scale = np.sqrt(to_plot.shape[0]) / np.sqrt(np.sum(to_plot))
    to_plot = (w_scale * w_scale) * to_plot
    # fit_density_with_range: σ grid from the largest eigenvalue, brute force, fmin polish
    scale = np.sqrt(np.max(to_plot) / np.square(1.0 + 1.0 / np.sqrt(q)))
    grid = np.mgrid[slice(0.05 * scale, 2.0 * scale, 0.01 * scale)]
    objective = _MPObjective(np.sqrt(to_plot) if q == 1 else to_plot, q)
    start = grid[int(np.argmin(objective(grid)))]
    polished = scipy.optimize.fmin(lambda p: objective(p)[0], start, full_output=1, disp=False)
    s1 = polished[0][0]
    bulk_max = (s1 * (1 + 1 / np.sqrt(q))) ** 2
    tw = 1 / np.sqrt(q) * np.power(bulk_max, 2 / 3) * np.power(m, -2 / 3)
    edge = bulk_max + np.sqrt(tw)
    return {
        "num_spikes": int(np.count_nonzero(to_plot > edge)),
        "sigma_mp": float(s1),
        "bulk_max": float(bulk_max / (w_scale * w_scale)),
        "bulk_max_tw": float(edge / (w_scale * w_scale)),
        "w_scale": float(w_scale),
    }


def count_traps(
    weight: Matrix,
    rng: np.random.Generator | None = None,
    *,
    shuffle_source: ShuffleSource | None = None,
    float64: bool = True,
) -> dict[str, float]:
    """Correlation traps of one weight matrix, as WeightWatcher's ``randomize=True``:
    ``rand_num_spikes`` = eigenvalues of the element-shuffled W above the fitted MP bulk edge
    plus the Tracy–Widom margin (5 shuffles pooled when min(W.shape) < 100).

    Shuffles come from ``rng`` (a ``numpy.random.Generator``; a fresh one seeded 0 if None).
    To reproduce ``analyze(randomize=True)`` pass ``shuffle_source=np.random.shuffle`` after
    ``np.random.seed(s)`` and call this for WeightWatcher's layers in its order: it then
    draws exactly as WeightWatcher does, including the extra shuffle WeightWatcher makes
    (for its ``rand_distance``) after the pooled ones.

    Returns rand_num_spikes (−1 if the MP fit failed, as WeightWatcher), rand_sigma_mp,
    rand_bulk_max, rand_bulk_max_tw, max_rand_eval and replicas."""
    w = _as_tensor(weight)
    m, n = min(w.shape), max(w.shape)
    replicas = 5 if m < 100 else 1
    flat = w.reshape(-1).to(torch.float64 if float64 else torch.float32)
    if shuffle_source is None and rng is None:
        rng = np.random.default_rng(0)

    def permutation() -> np.ndarray:
        if shuffle_source is None:
            return rng.permutation(flat.numel())
        order = np.arange(flat.numel())
        shuffle_source(order)
        return order

    perms = torch.from_numpy(np.stack([permutation() for _ in range(replicas)]))
    if shuffle_source is not None:
        shuffle_source(np.arange(flat.numel()))  # WeightWatcher's rand_distance replica
    out = {
        "rand_num_spikes": -1,
        "rand_sigma_mp": math.nan,
        "rand_bulk_max": math.nan,
        "rand_bulk_max_tw": math.nan,
        "max_rand_eval": math.nan,
        "replicas": replicas,
    }
    if not bool(torch.isfinite(flat).all()):
        return out
    shuffled = flat[perms].reshape(replicas, *w.shape)
    if w.shape[0] >= w.shape[1]:
        grams = shuffled.mT @ shuffled
    else:
        grams = shuffled @ shuffled.mT
    rand_evals = np.sort(np.maximum(torch.linalg.eigvalsh(grams).double().numpy().ravel(), 0.0))
    out["max_rand_eval"] = float(rand_evals[-1])
    try:
        with np.errstate(all="ignore"):
            fit = fit_mp_bulk(rand_evals, n, m)
    except (ValueError, RuntimeError, FloatingPointError):
        return out
    out.update(
        rand_num_spikes=fit["num_spikes"],
        rand_sigma_mp=fit["sigma_mp"],
        rand_bulk_max=fit["bulk_max"],
        rand_bulk_max_tw=fit["bulk_max_tw"],
    )
    return out


def layer_traps(
    matrices: Mapping[str, Matrix],
    rng: np.random.Generator | None = None,
    *,
    shuffle_source: ShuffleSource | None = None,
    min_evals: int = MIN_EVALS,
) -> dict[str, dict[str, float] | None]:
    """``count_traps`` for every matrix WeightWatcher would analyse, in the given order
    (one shared ``rng`` or ``shuffle_source``); None for the others."""
    if shuffle_source is None and rng is None:
        rng = np.random.default_rng(0)
    return {
        name: count_traps(w, rng, shuffle_source=shuffle_source)
        if analysable(tuple(w.shape), min_evals)
        else None
        for name, w in matrices.items()
    }


@torch.no_grad()
def traps_metrics(model: nn.Module, seed: int = 0, min_evals: int = MIN_EVALS) -> dict[str, float]:
    """``traps/<layer>``: WeightWatcher's ``rand_num_spikes`` of each 2-D weight (NaN if too
    small or the MP fit failed), counted over its pooled shuffles (5 when min(W.shape) < 100,
    so one trap there counts up to 5 times); ``traps_total``: traps per shuffle, i.e. each
    layer's count divided by its number of shuffles, summed over layers (may be fractional).
    Shuffles come from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    results = layer_traps(layer_matrices(model), rng, min_evals=min_evals)
    out: dict[str, float] = {}
    per_shuffle = 0.0
    for name, result in results.items():
        count = -1 if result is None else result["rand_num_spikes"]
        out[f"traps/{name}"] = float(count) if count >= 0 else math.nan
        if count > 0:
            per_shuffle += count / result["replicas"]
    out["traps_total"] = per_shuffle
    return out
