"""Checkpoints: model, optimizer, scheduler, sampler and RNG state at a step.

Files are written atomically and loaded with weights_only=True (no pickled code runs).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from grokterm.engine.models import build_model
from grokterm.engine.tasks import task_shape
from grokterm.lab.checkpoint_files import checkpoint_path, list_checkpoints
from grokterm.lab.store import with_filename

if TYPE_CHECKING:
    from grokterm.engine.loop import Session


def save_checkpoint(session: Session, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "step": session.step,
        "model": session.model.state_dict(),
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "sampler": session.sampler.state(),
        "torch_rng": torch.get_rng_state(),
        "initial_norm": session.initial_norm,
        "previous_params": session.previous_params,
        "prober": session.prober.state() if session.prober else {},
    }
    if session.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(session.device)
    path = checkpoint_path(folder, session.step)
    # Serialised in memory first: torch.save straight to a file on a full disk fails with
    # an opaque "unexpected pos" RuntimeError instead of ENOSPC.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)  # a failed write leaves no torn file behind
        if isinstance(exc, OSError):
            raise with_filename(exc, path) from exc
        raise
    return path


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def restore(session: Session, state: dict[str, Any]) -> None:
    session.model.load_state_dict(state["model"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    session.sampler.load(state["sampler"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and session.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), session.device)
    session.initial_norm = float(state["initial_norm"])
    session.previous_params = state["previous_params"]
    session.step = int(state["step"])
    if session.prober and "prober" in state:
        session.prober.load(state["prober"])


def load_model(run_dir: Path, step: int | None = None, device: str = "cpu") -> torch.nn.Module:
    """The run's model with the weights of the checkpoint at `step` (default: the last)."""
    from grokterm.lab import LabError
    from grokterm.presets import build_experiment, read_toml

    experiment = build_experiment(read_toml(run_dir / "experiment.toml"))
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise LabError(f"{run_dir.name} has no checkpoints yet")
    if step is None:
        step = max(found)
    if step not in found:
        raise LabError(f"{run_dir.name} has no checkpoint at step {step} (have: {list(found)})")
    vocab_size, input_dim, n_classes = task_shape(experiment.task)
    model = build_model(
        experiment.model, vocab_size=vocab_size, input_dim=input_dim, n_classes=n_classes
    )
    state = load_checkpoint(found[step], device)
    model.to(device=device, dtype=getattr(torch, experiment.dtype))
    model.load_state_dict(state["model"])
    return model.eval()
