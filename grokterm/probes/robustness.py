"""Robustness probes: accuracy under relative Gaussian weight noise, and the commutativity score.

Following the robustness view of grokking (Tan & Huang 2023): a model that has found the
general solution keeps its accuracy under weight perturbations that break a memorising one,
and a model of a commutative operation that generalises agrees with itself on (a, b) and
(b, a). Tan & Huang's exact perturbation scheme and metrics could not be checked (grokterm
research notes, papers.md §4–§5); the definitions here are the plain ones of DESIGN §6.

The test accuracy split by whether the swapped pair was trained on lives in ``basic``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from grokterm.probes.basic import predict, share

__all__ = ["all_pair_tokens", "commutativity_score", "noise_accuracy"]


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return share(predict(model, x).argmax(dim=1) == y)


@torch.no_grad()
def noise_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_list: Iterable[float],
    seed: int,
) -> dict[str, float]:
    """Accuracy on (x, y) with the weights moved to θ + ε‖θ‖z/√d, for each ε.

    ‖θ‖ is the norm of all parameters together and d their number, so the noise vector's
    expected norm is ε‖θ‖. z ~ N(0, I) is drawn afresh for each ε, in the order given, from a
    CPU ``torch.Generator`` seeded with ``seed`` (the same noise on every device and at every
    call with that seed). The weights are restored bit-identically afterwards, also on error,
    and so is the train/eval mode. Names: ``robust_acc/eps=<ε>``.
    """
    params = [p for p in model.parameters()]
    saved = [p.detach().clone() for p in params]
    d = sum(p.numel() for p in params)
    norm = math.sqrt(sum(float(p.detach().double().pow(2).sum()) for p in params))
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    try:
        for eps in eps_list:
            scale = float(eps) * norm / math.sqrt(d) if d else 0.0
            for param in params:
                z = torch.randn(param.shape, generator=generator, dtype=torch.float64)
                param.add_((scale * z).to(device=param.device, dtype=param.dtype))
            out[f"robust_acc/eps={float(eps):g}"] = _accuracy(model, x, y)
            for param, original in zip(params, saved, strict=True):
                param.copy_(original)
    finally:
        for param, original in zip(params, saved, strict=True):
            param.copy_(original)
        model.train(was_training)
    return out


def all_pair_tokens(p: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Tokens [a, b, =] for all p² pairs in row-major order (row a·p + b); '=' is token p."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    return torch.stack([a, b, torch.full_like(a, p)], dim=1).to(device)


@torch.no_grad()
def commutativity_score(model: nn.Module, p: int, device: torch.device | str) -> float:
    """Share of the unordered pairs a < b in Z_p with argmax f(a, b) == argmax f(b, a).

    The diagonal a = b, which agrees trivially, is left out, so a model that ignores the
    order of its inputs scores 1 and a random one about 1/p. Name: ``commutativity``.
    """
    if p < 2:
        return math.nan
    was_training = model.training
    model.eval()
    try:
        preds = predict(model, all_pair_tokens(p, device)).argmax(dim=1).view(p, p)
    finally:
        model.train(was_training)
    upper = torch.triu(torch.ones(p, p, dtype=torch.bool, device=preds.device), diagonal=1)
    return share((preds == preds.T)[upper])
