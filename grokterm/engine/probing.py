"""The probes of a run at their cadences, and the per-step loss windows behind the spectral
probe and the early-loss statistics (seed 003).

Probes never touch the global RNGs (each draws from its own seeded generator), so turning
one on or off never changes the training trajectory.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from grokterm.config import COMMUTATIVE_OPS, Experiment, ModularTask
from grokterm.probes import basic


class Prober:
    def __init__(self, exp: Experiment, data, eval_steps: list[int]):
        self.exp = exp
        self.probes = exp.probes
        self.data = data
        self.eval_index = {step: index for index, step in enumerate(sorted(eval_steps))}
        task = exp.task
        self.modular_p = task.p if isinstance(task, ModularTask) else None
        self.commutative = isinstance(task, ModularTask) and task.op in COMMUTATIVE_OPS
        self.fourier_ready = isinstance(task, ModularTask) and task.op == "+"
        self.key_freqs: list[int] = []
        self.loss_window = None
        self.early_window = None
        if self.probes.spectral:
            from grokterm.probes import spectral

            self.loss_window = spectral.SpectralWindow(self.probes.spectral_window)
            self.early_window = spectral.EarlyWindow(self.probes.forecast_steps)
        self._train_mask: torch.Tensor | None = None
        self.failed: set[str] = set()

    # --- every step ------------------------------------------------------------------------

    def add_loss(self, loss: float) -> dict[str, float] | None:
        """Feed the step's loss; returns the early-loss statistics (``forecast/m0``,
        ``forecast/low_freq_amp``) once, when the early window fills up."""
        if self.loss_window is None:
            return None
        self.loss_window.add(loss)
        if self.early_window is not None:
            return self.early_window.add(loss)
        return None

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs so that a resumed run probes exactly as an unbroken one."""
        if self.loss_window is None:
            return {}
        return {
            "loss_window": _tensors(self.loss_window.state()),
            "early_window": _tensors(self.early_window.state()),
        }

    def load(self, state: dict[str, Any]) -> None:
        if self.loss_window is not None and state:
            self.loss_window.load(_arrays(state["loss_window"]))
            self.early_window.load(_arrays(state["early_window"]))

    # --- at eval points --------------------------------------------------------------------

    def due(self, step: int, every: int) -> bool:
        return self.eval_index.get(step, 0) % every == 0

    def costly(self, model: torch.nn.Module, step: int, seed: int) -> dict[str, float]:
        """The probes beyond accuracy, norms and cosine distance, each at its cadence."""
        p, out = self.probes, {}
        if p.htsr and self.due(step, p.htsr_every):
            out.update(self._guarded("htsr", step, lambda: self._htsr(model)))
        if p.traps and self.due(step, p.traps_every):
            out.update(self._guarded("traps", step, lambda: self._traps(model)))
        if self.loss_window is not None:
            out.update(self._guarded("spectral", step, self.loss_window.metrics))
        if p.robustness and self.due(step, p.robustness_every):
            out.update(self._guarded("robustness", step, lambda: self._robustness(model, seed)))
        if p.fourier and self.fourier_ready and self.due(step, p.fourier_every):
            out.update(self._guarded("fourier", step, lambda: self._fourier(model)))
        return out

    def _guarded(self, name: str, step: int, probe) -> dict[str, float]:
        """A probe that fails (e.g. an SVD on exploding weights) skips this point and says so
        once in run.log; it never ends the run."""
        try:
            return probe()
        except Exception as exc:  # noqa: BLE001 - any probe failure is reported, not fatal
            if name not in self.failed:
                self.failed.add(name)
                print(f"probe {name} failed at step {step}: {exc!r}", file=sys.stderr)
            return {}

    def _htsr(self, model: torch.nn.Module) -> dict[str, float]:
        from grokterm.probes import htsr

        return htsr.htsr_metrics(model, float64=self.probes.htsr_float64)

    def _traps(self, model: torch.nn.Module) -> dict[str, float]:
        from grokterm.probes import htsr

        return htsr.traps_metrics(model, seed=self.probes.traps_seed)

    def _robustness(self, model: torch.nn.Module, seed: int) -> dict[str, float]:
        from grokterm.probes import robustness

        out = robustness.noise_accuracy(
            model, self.data.test_x, self.data.test_y, self.probes.noise_eps, seed
        )
        if self.commutative:
            device = self.data.test_x.device
            out["commutativity"] = robustness.commutativity_score(model, self.modular_p, device)
        return out

    def _fourier(self, model: torch.nn.Module) -> dict[str, float]:
        from grokterm.probes import fourier

        metrics, self.key_freqs = fourier.fourier_metrics(model, self.modular_p, self.train_mask())
        return metrics

    def train_mask(self) -> torch.Tensor:
        """Which of the p² pairs (a, b), in row-major order, are training pairs."""
        if self._train_mask is None:
            p = self.modular_p
            mask = torch.zeros(p * p, dtype=torch.bool, device=self.data.train_x.device)
            mask[self.data.train_x[:, 0] * p + self.data.train_x[:, 1]] = True
            self._train_mask = mask
        return self._train_mask


def _tensors(state: dict[str, Any]) -> dict[str, Any]:
    """numpy arrays as tensors, so checkpoints load with weights_only=True."""
    return {k: torch.from_numpy(v) if hasattr(v, "dtype") else v for k, v in state.items()}


def _arrays(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def keep_params_before_probe(session) -> None:
    """Before the optimizer step that lands on a probe step, keep a copy of θ, so that the
    probe measures 1 − cos(θ_t, θ_{t−1}) between consecutive steps (seed 003). Only then:
    a copy every step would double the loop's memory traffic."""
    if session.exp.probes.cosine_distance and session.step + 1 in session.eval_steps:
        session.previous_params = basic.flat_parameters(session.model).clone()


def basic_probes(session) -> dict[str, Any]:
    """Accuracy and loss always; norms and cosine distance when switched on."""
    exp, model = session.exp, session.model
    out = basic.accuracy_probe(model, session.data, session.loss_fn, session.swap_seen)
    if exp.probes.weight_norm:
        out.update(basic.weight_norm_probe(model))
    if exp.probes.cosine_distance and session.previous_params is not None:
        params = basic.flat_parameters(model)
        out["cos_dist"] = basic.cosine_distance(params, session.previous_params)
        session.previous_params = None
    return out
