"""Fourier progress measures for modular addition (Nanda et al. 2023, "Progress measures for
grokking via mechanistic interpretability"), re-implemented from the definitions in grokterm's
research notes (papers.md §4):

* **Fourier basis of Z_p**: u₀ = 1/√p, then cos(2πkx/p) and sin(2πkx/p) for k = 1..⌊p/2⌋,
  each normalised (rows of an orthonormal p × p matrix; for even p the all-zero sin at
  k = p/2 is left out). Row 2k−1 is cos k, row 2k is sin k.
* **Key frequencies**: the MLP activations over all p² inputs (a, b), centred over the inputs,
  are taken to the 2-D Fourier basis; for each neuron and frequency f the share of its energy
  in the components {0, 2f−1, 2f}² is ``frac``; the neuron's frequency is the argmax. Neurons
  whose best share is below ``frac_threshold`` (0.85, as in Nanda's notebook) are unclustered.
* **Restricted loss**: the logits over all p² inputs projected onto the directions
  cos(w_k(a+b)) and sin(w_k(a+b)) of the key frequencies, plus the per-class mean of what the
  projection removed (bias correction); cross-entropy over all p² inputs.
* **Excluded loss**: the logits with those directions (all key frequencies together) removed;
  cross-entropy on the training inputs only.

Differences from Nanda's code: (1) the key frequencies are those of the *clustered* neurons
only (``frac_threshold=0`` gives Nanda's set, the argmax frequencies of all neurons), because
a live probe has no final model to take them from and the argmax of an unstructured neuron is
noise; (2) frequencies run over 1..⌊p/2⌋ (Nanda's loop ``range(1, p//2)`` skips ⌊p/2⌋);
(3) everything is computed in float64 (Nanda's cross-entropy casts to float32); (4) the
probe works for the embedding MLP too (first hidden layer), not only the transformer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from grokterm.probes.basic import EVAL_CHUNK, predict
from grokterm.probes.robustness import all_pair_tokens

FRAC_THRESHOLD = 0.85

__all__ = [
    "FRAC_THRESHOLD",
    "fourier_basis",
    "fourier_metrics",
    "key_frequencies",
    "mlp_activations",
    "neuron_frequency_fracs",
    "restricted_and_excluded_from_logits",
    "restricted_and_excluded_loss",
    "sum_directions",
]


def fourier_basis(
    p: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """Orthonormal Fourier basis of Z_p as rows: [1, cos 1, sin 1, cos 2, sin 2, ...] / norms."""
    x = torch.arange(p, dtype=torch.float64)
    rows = [torch.ones(p, dtype=torch.float64)]
    for k in range(1, p // 2 + 1):
        angle = 2 * math.pi * k * x / p
        rows.append(torch.cos(angle))
        if 2 * k != p:  # sin(πx) vanishes on Z_p for even p
            rows.append(torch.sin(angle))
    basis = torch.stack(rows)
    basis = basis / basis.norm(dim=1, keepdim=True)
    return basis.to(device=device, dtype=dtype)


def _frequency_indices(p: int) -> list[list[int]]:
    """For f = 1..⌊p/2⌋, the basis rows {0, cos f, sin f} (rows 0, 2f−1, 2f; no sin at p/2)."""
    return [[0, 2 * f - 1] + ([2 * f] if 2 * f < p else []) for f in range(1, p // 2 + 1)]


# --- activations --------------------------------------------------------------------------


def _neuron_module(model: nn.Module) -> tuple[nn.Module, bool]:
    """(module whose output holds the neurons, whether it still needs ReLU at the last
    position). By shape, not by class, so that probes need not import the engine."""
    blocks = getattr(model, "blocks", None)
    if blocks is not None and len(blocks) and hasattr(blocks[-1], "mlp_in"):
        return blocks[-1].mlp_in, True  # Transformer: ReLU is applied functionally
    mlp = getattr(model, "mlp", None)
    if hasattr(model, "embed") and isinstance(mlp, nn.Sequential):  # EmbeddingMLP
        for module in mlp:
            if not isinstance(module, nn.Linear):
                return module, False
        raise ValueError("the MLP has no hidden layer, so no neurons to analyse")
    raise TypeError(f"no MLP neurons known for {type(model).__name__}")


@torch.no_grad()
def mlp_activations(model: nn.Module, p: int) -> torch.Tensor:
    """Neuron activations over all p² inputs (row a·p + b), shape [p², n_neurons].

    EmbeddingMLP: the output of the first hidden layer's activation function. Transformer:
    ReLU(mlp_in(·)) of the last block at the last position (the '=' token). Taken with a
    forward hook, with the model in eval mode (its mode is restored).
    """
    module, last_position = _neuron_module(model)
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
        if last_position:
            output = torch.relu(output[:, -1])
        captured.append(output.detach())

    device = next(model.parameters()).device
    tokens = all_pair_tokens(p, device)
    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    try:
        for start in range(0, len(tokens), EVAL_CHUNK):
            model(tokens[start : start + EVAL_CHUNK])
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured)


# --- key frequencies ----------------------------------------------------------------------


def neuron_frequency_fracs(acts: torch.Tensor, p: int) -> torch.Tensor:
    """frac[n, f−1]: share of neuron n's (centred) energy in the 2-D Fourier components
    {0, cos f, sin f}², for f = 1..⌊p/2⌋. Shape [n_neurons, ⌊p/2⌋]; 0 for a dead neuron."""
    acts = acts.detach().to(torch.float64)
    if acts.shape[0] != p * p:
        raise ValueError(f"expected activations over p² = {p * p} inputs, got {acts.shape[0]}")
    centred = acts - acts.mean(dim=0, keepdim=True)
    grid = centred.T.reshape(-1, p, p)  # [neuron, a, b]
    basis = fourier_basis(p, device=acts.device)
    spectrum = torch.einsum("ia,nab,jb->nij", basis, grid, basis).pow(2)
    total = spectrum.sum(dim=(1, 2))
    fracs = []
    for rows in _frequency_indices(p):
        idx = torch.tensor(rows, device=acts.device)
        fracs.append(spectrum[:, idx][:, :, idx].sum(dim=(1, 2)))
    energy = torch.stack(fracs, dim=1)
    # a neuron that is constant over all inputs (dead ReLU) has no energy: frac 0 everywhere
    return torch.where(total[:, None] > 0, energy / total.clamp_min(1e-300)[:, None], 0.0)


def key_frequencies(
    acts: torch.Tensor, p: int, frac_threshold: float = FRAC_THRESHOLD
) -> tuple[list[int], torch.Tensor]:
    """(key frequencies, per-neuron frac). Each neuron's frequency is its argmax-frac f; the
    key frequencies are the sorted unique frequencies of the neurons whose best frac is at
    least ``frac_threshold`` (the clustered neurons). The second value is the best frac of
    each neuron, shape [n_neurons]."""
    fracs = neuron_frequency_fracs(acts, p)
    best, arg = fracs.max(dim=1)
    clustered = best >= frac_threshold
    freqs = sorted({int(f) + 1 for f in arg[clustered].tolist()})
    return freqs, best


# --- restricted and excluded loss ---------------------------------------------------------


def sum_directions(
    p: int, freqs: Sequence[int], device: torch.device | str | None = None
) -> torch.Tensor:
    """Orthonormal columns cos(w_k(a+b)), sin(w_k(a+b)) over the p² inputs (row a·p + b),
    w_k = 2πk/p, for each k in freqs. Shape [p², ≤ 2·len(freqs)]. These equal Nanda's
    (c_k⊗c_k − s_k⊗s_k)/√2 and (s_k⊗c_k + c_k⊗s_k)/√2."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    total = (a + b).to(torch.float64)
    columns = []
    for k in sorted(set(int(f) for f in freqs)):
        if not 1 <= k <= p // 2:
            raise ValueError(f"frequency {k} is outside 1..{p // 2}")
        angle = 2 * math.pi * k * total / p
        columns.append(torch.cos(angle))
        if 2 * k != p:
            columns.append(torch.sin(angle))
    if not columns:
        return torch.zeros(p * p, 0, dtype=torch.float64, device=device)
    directions = torch.stack(columns, dim=1)
    return (directions / directions.norm(dim=0, keepdim=True)).to(device)


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return nn.functional.cross_entropy(logits, labels).item()


def restricted_and_excluded_from_logits(
    logits: torch.Tensor, p: int, key_freqs: Sequence[int], train_mask: torch.Tensor
) -> dict[str, float]:
    """Restricted and excluded loss from the logits over all p² inputs (row a·p + b); logit
    columns beyond the first p (e.g. '=') are dropped. The labels are (a + b) mod p."""
    logits = logits.detach()[:, :p].to(torch.float64)
    device = logits.device
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    labels = ((a + b) % p).to(device)
    directions = sum_directions(p, key_freqs, device)
    kept = directions @ (directions.T @ logits)
    restricted = kept + (logits - kept).mean(dim=0, keepdim=True)
    excluded = logits - kept
    mask = train_mask.to(device=device, dtype=torch.bool).reshape(-1)
    return {
        "fourier/restricted_loss": _cross_entropy(restricted, labels),
        "fourier/excluded_loss": _cross_entropy(excluded[mask], labels[mask])
        if mask.any()
        else math.nan,
    }


@torch.no_grad()
def restricted_and_excluded_loss(
    model: nn.Module, p: int, key_freqs: Sequence[int], train_mask: torch.Tensor
) -> dict[str, float]:
    """``fourier/restricted_loss`` (all p² inputs) and ``fourier/excluded_loss`` (training
    inputs, all key frequencies removed together) of a model of (a + b) mod p.
    ``train_mask`` [p²] marks the training pairs in row-major order (a·p + b)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = predict(model, all_pair_tokens(p, device))
    finally:
        model.train(was_training)
    return restricted_and_excluded_from_logits(logits, p, key_freqs, train_mask)


def fourier_metrics(
    model: nn.Module, p: int, train_mask: torch.Tensor, frac_threshold: float = FRAC_THRESHOLD
) -> tuple[dict[str, float], list[int]]:
    """(metrics, key frequencies) of a model of (a + b) mod p. Metrics, all floats:
    ``fourier/n_key_freqs``, ``fourier/frac_clustered`` (share of neurons with best frac ≥
    the threshold; dead neurons count as unclustered), ``fourier/restricted_loss``,
    ``fourier/excluded_loss``. The key frequencies (sorted ints) are for an event."""
    acts = mlp_activations(model, p)
    freqs, best = key_frequencies(acts, p, frac_threshold)
    metrics = {
        "fourier/n_key_freqs": float(len(freqs)),
        "fourier/frac_clustered": (best >= frac_threshold).double().mean().item(),
    }
    metrics.update(restricted_and_excluded_loss(model, p, freqs, train_mask))
    return metrics, freqs
