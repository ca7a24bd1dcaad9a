"""Checkpoints: model, optimizer, scheduler, sampler and RNG state at a step.

Files are written atomically and loaded with weights_only=True (no pickled code runs).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from grokterm.engine.models import build_model
from grokterm.engine.recorder import first_line, warn
from grokterm.engine.tasks import task_shape
from grokterm.lab.checkpoint_files import checkpoint_path, list_checkpoints
from grokterm.lab.store import with_filename
from grokterm.lab.stream import read_records, truncate_after
from grokterm.phases import replay

if TYPE_CHECKING:
    from grokterm.engine.loop import Session
    from grokterm.lab import Lab
    from grokterm.phases import PhaseDetector


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


# --- resume: back to the newest checkpoint that loads ----------------------------------------


def rewind_to_checkpoint(lab: Lab, run_id: str, session: Session) -> PhaseDetector | None:
    """Restore the last checkpoint; drop metrics and events after it; replay the detector.

    Returns the replayed detector, or None when no checkpoint loads (the run ended before
    its first one): then the run's records are dropped and it starts again from step 0.
    """
    run_dir = lab.run_dir(run_id)
    found = list_checkpoints(run_dir / "checkpoints")
    # The newest checkpoint whose records all reached the disk (streams flush every second).
    last_recorded = max((r["step"] for r in read_records(run_dir / "metrics.jsonl")), default=0)
    step = restore_newest_loadable(session, {s: p for s, p in found.items() if s <= last_recorded})
    if step is None:
        had = f"none of its {len(found)} checkpoint(s) loads" if found else "it has no checkpoint"
        warn(f"{run_id} starts again from step 0: {had}")
        truncate_after(run_dir / "metrics.jsonl", -1)
        lab.delete_events(run_id, after_step=-1)
        return None
    truncate_after(run_dir / "metrics.jsonl", step)
    lab.delete_events(run_id, after_step=step)
    records = read_records(run_dir / "metrics.jsonl")
    probes = [r for r in records if "test_acc" in r]
    session.best_test_acc = max((r["test_acc"] for r in probes), default=-math.inf)
    detector, replayed = replay(records, session.exp.detector)
    # Events the crashed process could not write (a failing lab log) come back from the
    # replay; those already recorded are not repeated.
    recorded = {(event.step, event.kind) for event in lab.events(run_id)}
    lab.add_events(run_id, [e for e in replayed if (e["step"], e["kind"]) not in recorded])
    return detector


def restore_newest_loadable(session: Session, checkpoints: dict[int, Path]) -> int | None:
    """Restore the newest checkpoint that loads (weights only) and fits; returns its step,
    or None when none does. A damaged or unsafe file is reported in run.log and skipped,
    never deleted."""

    for step in sorted(checkpoints, reverse=True):
        path = checkpoints[step]
        try:
            restore(session, load_checkpoint(path, session.device))
        except Exception as exc:  # torch reports damage as several types
            why = f"{type(exc).__name__}: {first_line(exc)}"
            warn(f"skipped checkpoint {path.name}: it does not load ({why})")
            continue
        return step
    return None
