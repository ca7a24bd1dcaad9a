"""The names of a run's checkpoint files, readable without importing torch."""

from __future__ import annotations

from pathlib import Path


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:09d}.pt"


def list_checkpoints(folder: Path) -> dict[int, Path]:
    """Checkpoint files by step, ascending; an absent folder has none."""
    found = {}
    for path in folder.glob("step-*.pt"):
        try:
            found[int(path.stem.removeprefix("step-"))] = path
        except ValueError:
            continue
    return dict(sorted(found.items()))
