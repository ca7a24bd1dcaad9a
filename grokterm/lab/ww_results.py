"""WeightWatcher results stored with a run, and how they line up with grokterm's live values.

``grokterm analyze RUN --weightwatcher`` runs WeightWatcher on a checkpoint in a child process
(grokterm/engine/ww_analysis.py), which leaves in ``runs/<id>/weightwatcher/``:

* ``step-<N>.json``: WeightWatcher's per-layer numbers for the checkpoint at step N, written
  last and atomically, so a JSON file always names images that exist;
* ``step-<N>-layer<id>-<plot>.png``: its ESD plots (the log-log ESD with the power-law fit,
  and the ESD against the element-shuffled one that traps are counted on);
* ``step-<N>.log``: whatever WeightWatcher printed or logged.

This module only reads and compares: it imports neither torch nor weightwatcher.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from grokterm.lab.checkpoint_files import list_checkpoints
from grokterm.lab.store import LabError

RESULTS_DIR = "weightwatcher"
FAILURE_PREFIX = "analysis failed: "  # the child's last line in its log when it fails
_RESULT_NAME = re.compile(r"step-(\d+)\.json")

# grokterm's metric-stream key prefix for each compared column (grokterm/probes/htsr.py)
LIVE_KEYS = {
    "alpha": "alpha",
    "alpha_weighted": "alpha_weighted",
    "log_spectral_norm": "log_spectral_norm",
    "traps": "traps",
}


def results_dir(run_dir: Path) -> Path:
    return run_dir / RESULTS_DIR


def result_path(run_dir: Path, step: int) -> Path:
    return results_dir(run_dir) / f"step-{step:09d}.json"


def log_path(run_dir: Path, step: int) -> Path:
    return results_dir(run_dir) / f"step-{step:09d}.log"


def image_name(step: int, layer_id: int, plot: str) -> str:
    return f"step-{step:09d}-layer{layer_id}-{plot}.png"


# --- which checkpoint ------------------------------------------------------------------------


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the run's checkpoints, ascending (without importing torch)."""
    return list(list_checkpoints(run_dir / "checkpoints"))


def choose_step(run_id: str, steps: list[int], wanted: int | None) -> int:
    """The last checkpoint, or with `wanted` the one at or nearest before it."""
    if not steps:
        raise LabError(f"{run_id} has no checkpoint to analyse (runs/{run_id}/checkpoints/)")
    if wanted is None:
        return steps[-1]
    before = [step for step in steps if step <= wanted]
    if not before:
        raise LabError(
            f"{run_id} has no checkpoint at or before step {wanted} (first: step {steps[0]})"
        )
    return before[-1]


# --- stored results --------------------------------------------------------------------------


def read_result(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read WeightWatcher results {path}: {exc}") from None


def stored_results(run_dir: Path) -> list[dict[str, Any]]:
    """Every stored result of the run, by step."""
    folder = results_dir(run_dir)
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.iterdir() if _RESULT_NAME.fullmatch(p.name))
    return [read_result(path) for path in paths]


# --- against grokterm's live values ------------------------------------------------------------


def step_used(step: int, asked: int | None) -> str:
    if asked is None:
        return f"the checkpoint at step {step} (the last)"
    if asked == step:
        return f"the checkpoint at step {step}"
    return f"the checkpoint at step {step} (the nearest before step {asked})"


def live_steps(rows: list[dict[str, Any]], step: int) -> str:
    """Which probe steps the live values come from."""

    def steps(kind: str) -> str:
        found = sorted({row["live_steps"][kind] for row in rows} - {None})
        return ", ".join(map(str, found)) or "none"

    return (
        f"live: grokterm's probes at step {steps('alpha')} (alpha), {steps('traps')} (traps), "
        f"the last at or before the checkpoint's step {step}"
    )


def live_values(records: list[dict[str, Any]], step: int) -> dict[str, tuple[float, int]]:
    """Each per-layer HTSR and traps value of the metric stream as last recorded at or
    before `step`, with the step it was recorded at."""
    prefixes = tuple(f"{key}/" for key in LIVE_KEYS.values())
    latest: dict[str, tuple[float, int]] = {}
    for record in records:
        if record["step"] > step:
            break
        for key, value in record.items():
            if key.startswith(prefixes):
                latest[key] = (value, record["step"])
    return latest


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _live(latest: dict[str, tuple[float, int]], key: str) -> tuple[float | None, int | None]:
    value, step = latest.get(key, (None, None))
    return _finite(value), step


def _lambda_max(log_value: float | None) -> float | None:
    return None if log_value is None else 10**log_value


# the compared columns and their headers; traps = WeightWatcher's rand_num_spikes
COMPARED = {"alpha": "α", "alpha_weighted": "α_weighted", "lambda_max": "λ_max", "traps": "traps"}


def ww_values(layer: dict[str, Any]) -> dict[str, float | None]:
    return {
        "alpha": _finite(layer.get("alpha")),
        "alpha_weighted": _finite(layer.get("alpha_weighted")),
        "lambda_max": _finite(layer.get("spectral_norm")),
        "traps": _finite(layer.get("rand_num_spikes")),
    }


def compare_row(
    param: str, layer: dict[str, Any] | None, latest: dict[str, tuple[float, int]], note: str
) -> dict[str, Any]:
    """One weight: WeightWatcher's numbers (if it analysed it) beside grokterm's."""
    alpha, alpha_step = _live(latest, f"alpha/{param}")
    traps, traps_step = _live(latest, f"traps/{param}")
    if not note and alpha_step is None and traps_step is None:
        note = "no live value in the metric stream"
    return {
        "layer": param,
        "ww_id": None if layer is None else layer["layer_id"],
        "ww": dict.fromkeys(COMPARED) if layer is None else ww_values(layer),
        "live": {
            "alpha": alpha,
            "alpha_weighted": _live(latest, f"alpha_weighted/{param}")[0],
            "lambda_max": _lambda_max(_live(latest, f"log_spectral_norm/{param}")[0]),
            "traps": traps,
        },
        "live_steps": {"alpha": alpha_step, "traps": traps_step},
        "note": note,
        "images": [] if layer is None else list(layer.get("images", [])),
    }


def comparison(result: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored result as table rows: every layer WeightWatcher analysed, then every weight
    grokterm probes that WeightWatcher did not, with the reason (a fused QKV projection,
    a raw parameter, too few eigenvalues)."""
    latest = live_values(records, result["step"])
    rows = [compare_row(layer["param"], layer, latest, "") for layer in result["layers"]]
    rows += [
        compare_row(param, None, latest, reason)
        for param, reason in result.get("unanalysed", {}).items()
    ]
    return {
        "run": result["run"],
        "step": result["step"],
        "weightwatcher": result["weightwatcher"],
        "options": result.get("options", {}),
        "rows": rows,
        "images": [name for row in rows for name in row["images"]],
    }
