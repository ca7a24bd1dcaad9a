"""Cheap probes run at every eval point: accuracy and loss, weight norms, cosine distance."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EVAL_CHUNK = 16384


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])


def share(mask: torch.Tensor) -> float:
    """The fraction of True in ``mask``, exact in float64: float32's mean gives 9/10 as
    0.89999998, which a 0.9 bar (Liu et al.'s "reached") would never see reached."""
    return int(mask.sum()) / mask.numel()


@torch.no_grad()
def loss_and_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
) -> tuple[float, float, torch.Tensor]:
    """Mean loss, accuracy and the per-example correctness mask."""
    logits = predict(model, x)
    correct = logits.argmax(dim=1) == y
    return loss_fn(logits, y).item(), share(correct), correct


def accuracy_probe(
    model: nn.Module, data, loss_fn: LossFn, swap_seen: torch.Tensor | None = None
) -> dict[str, float]:
    """Train/test loss and accuracy; with swap_seen, test accuracy split by whether the
    swapped pair (b, a) of a test pair was in the training set."""
    was_training = model.training
    model.eval()
    train_loss, train_acc, _ = loss_and_accuracy(model, data.train_x, data.train_y, loss_fn)
    test_loss, test_acc, test_correct = loss_and_accuracy(model, data.test_x, data.test_y, loss_fn)
    model.train(was_training)
    out = {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
    }
    if swap_seen is not None:
        for name, mask in (("seen", swap_seen), ("unseen", ~swap_seen)):
            if mask.any():
                out[f"test_acc_swap_{name}"] = share(test_correct[mask])
    return out


def layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight matrix (2-D parameter), by parameter name."""
    return {name: p for name, p in model.named_parameters() if p.ndim == 2}


def last_layer_name(model: nn.Module) -> str:
    return list(layer_weights(model))[-1]


@torch.no_grad()
def weight_norm_probe(model: nn.Module) -> dict[str, float]:
    squares = {name: p.detach().pow(2).sum() for name, p in model.named_parameters()}
    total = torch.stack(list(squares.values())).sum().sqrt().item()
    out = {"weight_norm": total}
    for name in layer_weights(model):
        out[f"norm/{name}"] = squares[name].sqrt().item()
    out["last_layer_norm"] = out[f"norm/{last_layer_name(model)}"]
    return out


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def cosine_distance(current: torch.Tensor, previous: torch.Tensor) -> float:
    """1 − cos(current, previous), as ‖u − v‖²/2 of the unit vectors in float64. Between
    consecutive steps it is ~1e-10..1e-6, below float32 rounding of 1 − cos (which gave
    negative values)."""
    u = current.double() / current.double().norm()
    v = previous.double() / previous.double().norm()
    return float((u - v).pow(2).sum() / 2)
