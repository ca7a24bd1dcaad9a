"""The training loop: seeded, checkpointed, stoppable, probing at its cadence.

It reports through a `Recorder` (metric records, events, heartbeats, the end of the run),
so the same loop serves a foreground CLI run, a detached worker process and a benchmark.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from grokterm.config import COMMUTATIVE_OPS, Experiment, ModularTask
from grokterm.engine.checkpoints import save_checkpoint
from grokterm.engine.models import build_model, rescale_to_norm, weight_norm
from grokterm.engine.probing import Prober, basic_probes, keep_params_before_probe
from grokterm.engine.stopping import StopFlag
from grokterm.engine.tasks import Dataset, make_dataset, swapped_pair_in_train
from grokterm.errors import GrokError
from grokterm.phases import PhaseDetector


class Recorder(Protocol):
    def started(self, device: str, start_step: int, data: dict[str, Any]) -> None: ...
    def record(self, record: dict[str, Any]) -> None: ...
    def flush(self) -> None: ...
    def events(self, events: list[dict[str, Any]]) -> None: ...
    def heartbeat(self, step: int, probe: dict[str, Any]) -> None: ...
    def finished(self, status: str, step: int, summary: dict[str, Any], reason: str) -> None: ...


HEARTBEAT_SECONDS = 1.0


class DeviceError(GrokError):
    """The configured device is not available here."""


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device = cuda, but torch sees no CUDA device here (try device=auto)")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def loss_function(kind: str, n_classes: int, out_dim: int = 1):
    if kind == "cross_entropy":
        return nn.functional.cross_entropy
    if kind == "template_mse":

        def mse_to_template(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            # logits are -‖out - template‖²: the MSE to the true template is -logit / dim.
            return -logits.gather(1, targets.unsqueeze(1)).mean() / out_dim

        return mse_to_template

    def mse_to_one_hot(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        one_hot = nn.functional.one_hot(targets, n_classes).to(logits.dtype)
        return nn.functional.mse_loss(logits, one_hot)

    return mse_to_one_hot


def parameter_groups(exp: Experiment, model: nn.Module) -> list[dict[str, Any]]:
    """All parameters at optim.lr and optim.weight_decay, or embedding tables in a group of
    their own when optim.embedding_lr or optim.embedding_weight_decay is set."""
    o = exp.optim
    own = {"lr": o.embedding_lr, "weight_decay": o.embedding_weight_decay}
    own = {key: value for key, value in own.items() if value is not None}
    if not own:
        return [{"params": list(model.parameters())}]
    embedding = [p for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]
    chosen = {id(p) for p in embedding}
    rest = [p for p in model.parameters() if id(p) not in chosen]
    return [{"params": embedding, **own}, {"params": rest}]


def build_optimizer(exp: Experiment, model: nn.Module) -> torch.optim.Optimizer:
    o = exp.optim
    groups = parameter_groups(exp, model)
    if o.kind == "adamw":
        return torch.optim.AdamW(
            groups, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay
        )
    if o.kind == "adam":
        return torch.optim.Adam(
            groups, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay
        )
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def build_scheduler(exp: Experiment, optimizer: torch.optim.Optimizer):
    warmup = exp.optim.warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )


class BatchSampler:
    """Full batch, or shuffled minibatches epoch by epoch from a seeded generator."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n = n
        self.batch_size = batch_size if 0 < batch_size < n else 0
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.order = torch.randperm(n, generator=self.generator) if self.batch_size else None
        self.position = 0

    def next(self) -> torch.Tensor | None:
        """Indices of the next batch; None means the whole training set."""
        if not self.batch_size:
            return None
        if self.position + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.position = 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order if self.order is not None else torch.empty(0),
            "position": self.position,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"] if self.batch_size else None
        self.position = int(state["position"])


@dataclass
class Session:
    """Everything a run needs, built from an Experiment."""

    exp: Experiment
    device: torch.device
    data: Dataset
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: BatchSampler
    loss_fn: Any
    initial_norm: float
    swap_seen: torch.Tensor | None = None
    step: int = 0
    previous_params: torch.Tensor | None = None
    best_test_acc: float = -math.inf
    eval_steps: set[int] = field(default_factory=set)
    prober: Prober | None = None


def build_session(exp: Experiment) -> Session:
    torch.manual_seed(exp.seed)
    device = pick_device(exp.device)
    dtype = getattr(torch, exp.dtype)
    data = make_dataset(exp.task, exp.seed).to(device, dtype)
    model = build_model(
        exp.model, vocab_size=data.vocab_size, input_dim=data.input_dim, n_classes=data.n_classes
    ).to(device=device, dtype=dtype)
    optimizer = build_optimizer(exp, model)
    swap_seen = None
    if isinstance(exp.task, ModularTask) and exp.task.op in COMMUTATIVE_OPS:
        swap_seen = swapped_pair_in_train(data).to(device)
    return Session(
        exp=exp,
        device=device,
        data=data,
        model=model,
        optimizer=optimizer,
        scheduler=build_scheduler(exp, optimizer),
        sampler=BatchSampler(len(data.train_x), exp.schedule.batch_size, exp.seed),
        loss_fn=loss_function(exp.schedule.loss, data.n_classes, getattr(exp.model, "out_dim", 1)),
        initial_norm=weight_norm(model).item(),
        swap_seen=swap_seen,
        eval_steps=set(exp.eval_steps()),
        prober=Prober(exp, data, exp.eval_steps()),
    )


# --- the loop ----------------------------------------------------------------------------


def probe(session: Session) -> dict[str, Any]:
    out = basic_probes(session)
    out.update(session.prober.costly(session.model, session.step, session.exp.seed))
    return out


def train_step(session: Session) -> float:
    data, model = session.data, session.model
    batch = session.sampler.next()
    x, y = (
        (data.train_x, data.train_y)
        if batch is None
        else (data.train_x[batch], data.train_y[batch])
    )
    loss = session.loss_fn(model(x), y)
    session.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    session.optimizer.step()
    session.scheduler.step()
    if session.exp.schedule.constrain_weight_norm:
        rescale_to_norm(model, session.initial_norm)
    session.step += 1
    return loss.item()


@dataclass
class Outcome:
    status: str
    step: int
    summary: dict[str, Any]
    reason: str = ""


class Bookkeeping:
    """What a run does around each optimizer step, apart from the step itself: keep θ before a
    probe step, record the loss, stop on divergence, feed the detector and the early-loss
    statistics, probe at eval points, checkpoint and beat the heartbeat. Kept apart from the
    stepping so that one stepper can later drive several runs' bookkeeping."""

    def __init__(
        self, session: Session, recorder: Recorder, checkpoints: Path, detector: PhaseDetector
    ):
        self.session, self.recorder, self.detector = session, recorder, detector
        self.checkpoints = checkpoints
        self.every = session.exp.schedule.checkpoint_every
        self.last_probe: dict[str, Any] = {}
        self.first_step = session.step
        self.started = time.monotonic()
        self.next_beat = self.started + HEARTBEAT_SECONDS

    def begin(self) -> None:
        session = self.session
        self.recorder.started(str(session.device), session.step, session.data.describe())
        if session.step == 0 and 0 in session.eval_steps:
            self.last_probe = probe(session)
            self.recorder.record({"step": 0, **self.last_probe})
            self.recorder.events(self.detector.update(0, self.last_probe))

    def before_step(self) -> None:
        keep_params_before_probe(self.session)

    def after_step(self, loss: float) -> str | None:
        """Book the step just taken; the reason when the loss diverged, else None."""
        session, recorder, detector = self.session, self.recorder, self.detector
        record: dict[str, Any] = {"step": session.step, "loss": loss}
        if not math.isfinite(loss):
            recorder.record(record)
            reason = f"training loss became {loss} at step {session.step}"
            recorder.events([detector.diverged(session.step, reason)])
            return reason
        detector.update_loss(session.step, loss)
        features = session.prober.add_loss(loss)
        if features:
            record.update(features)
            recorder.events(detector.record_forecast(session.step, features))
        if session.step in session.eval_steps:
            self.last_probe = probe(session)
            session.best_test_acc = max(session.best_test_acc, self.last_probe["test_acc"])
            record.update(self.last_probe)
            recorder.record(record)
            recorder.events(detector.update(session.step, self.last_probe))
        else:
            recorder.record(record)
        if self.every and session.step % self.every == 0:
            recorder.flush()  # a checkpoint never gets ahead of the records on disk
            save_checkpoint(session, self.checkpoints)
        self._beat(loss)
        return None

    def _beat(self, loss: float) -> None:
        now = time.monotonic()
        if now >= self.next_beat:
            self.recorder.heartbeat(self.session.step, {"loss": loss, **self.last_probe})
            self.next_beat = now + HEARTBEAT_SECONDS

    def end(self, status: str, reason: str) -> Outcome:
        session, every = self.session, self.every
        elapsed = time.monotonic() - self.started
        if status != "diverged" and not (every and session.step % every == 0 and session.step):
            self.recorder.flush()
            save_checkpoint(session, self.checkpoints)
        if status == "finished":
            self.recorder.events(self.detector.finish(session.step))
        outcome = Outcome(status, session.step, self._summary(elapsed), reason)
        self.recorder.finished(outcome.status, outcome.step, outcome.summary, outcome.reason)
        return outcome

    def _summary(self, elapsed: float) -> dict[str, Any]:
        session, last_probe = self.session, self.last_probe
        summary = {
            **self.detector.summary(),
            **self.detector.forecast_summary(),
            **{k: last_probe.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
            "weight_norm": last_probe.get("weight_norm"),
            "best_test_acc": (
                session.best_test_acc if math.isfinite(session.best_test_acc) else None
            ),
            "steps_per_second": (
                (session.step - self.first_step) / elapsed if elapsed > 0 else None
            ),
            "train_seconds": round(elapsed, 3),
            "device": str(session.device),
        }
        if session.prober.key_freqs:
            summary["key_freqs"] = list(session.prober.key_freqs)
        return summary


def run_training(
    session: Session,
    recorder: Recorder,
    checkpoints: Path,
    stop: StopFlag,
    detector: PhaseDetector | None = None,
) -> Outcome:
    """Train from session.step to the end of the schedule (or a stop, or divergence)."""
    books = Bookkeeping(
        session, recorder, checkpoints, detector or PhaseDetector(session.exp.detector)
    )
    session.model.train()
    books.begin()
    status, reason = "finished", ""
    while session.step < session.exp.schedule.steps:
        if stop.reason:
            status, reason = "stopped", stop.reason
            break
        books.before_step()
        diverged = books.after_step(train_step(session))
        if diverged:
            status, reason = "diverged", diverged
            break
    return books.end(status, reason)
