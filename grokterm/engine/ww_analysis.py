"""The child process of ``grokterm analyze RUN --weightwatcher``: WeightWatcher on a checkpoint.

    python -m grokterm.engine.ww_analysis RUN_DIR STEP [SEED]

Only this process imports weightwatcher: its import silences every warning, takes the root
logger and prints, and analyze() prints and plots. The parent sends this process's stdout
and stderr to ``weightwatcher/step-<N>.log``; results reach it only through the files
described in grokterm/lab/ww_results.py. Runs on the CPU: on a GPU WeightWatcher casts
weights to float16, and its numbers would no longer be comparable with the live probe's.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grokterm.errors import GrokError
from grokterm.lab.store import write_json_atomic
from grokterm.lab.ww_results import FAILURE_PREFIX, image_name, result_path, results_dir

PLOTS = ("esd",)  # of the five ESD plots WeightWatcher draws per layer: log-log, with the fit
WW_MODULE_KINDS = ("linear", "conv", "embedding")  # what WeightWatcher recognises by class name
MIN_EVALS = 8  # WeightWatcher 0.7.7's default
COLUMNS = (
    "layer_id",
    "name",
    "longname",
    "N",
    "M",
    "alpha",
    "alpha_weighted",
    "spectral_norm",
    "log_spectral_norm",
    "num_pl_spikes",
    "sigma",
    "rand_num_spikes",
    "warning",
)


class CheckpointError(GrokError):
    """A checkpoint that cannot be loaded for analysis."""


def import_weightwatcher():
    """weightwatcher, on the Agg backend, with its own logger turned down."""
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)  # its import resets it
    return weightwatcher


def json_value(value: Any) -> Any:
    """numpy scalars as Python ones; NaN and infinities as null (JSON has neither)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def why_not_analysed(model, param: str, shape: tuple[int, ...]) -> str:
    """Why WeightWatcher has no row for a weight grokterm's probe covers."""
    if ".in_proj_weight." in param:
        return "fused QKV: grokterm splits in_proj_weight into q, k, v; WeightWatcher skips it"
    owner, _, attribute = param.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    kind = type(module).__name__.lower()
    if attribute != "weight" or not any(k in kind for k in WW_MODULE_KINDS):
        return "raw parameter: WeightWatcher sees only Linear, Conv and Embedding weights"
    if min(shape) < MIN_EVALS:
        return f"fewer than {MIN_EVALS} eigenvalues: below WeightWatcher's min_evals"
    return "not analysed by WeightWatcher"


def unanalysed(model, analysed: set[str]) -> dict[str, str]:
    """Each weight grokterm's HTSR probe covers that WeightWatcher did not analyse, and why."""
    from grokterm.probes.htsr import layer_matrices

    return {
        param: why_not_analysed(model, param, tuple(weight.shape))
        for param, weight in layer_matrices(model).items()
        if param not in analysed
    }


def analyse(run_dir: Path, step: int, seed: int) -> dict[str, Any]:
    """WeightWatcher's analyze(randomize=True) on the checkpoint at `step`, and its ESD plots
    (moved next to the result); returns the result, not yet written."""
    import numpy as np

    from grokterm.engine.checkpoints import load_model

    ww = import_weightwatcher()
    try:
        model = load_model(run_dir, step)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        # torch's message (in the log) is long and suggests weights_only=False: not advice
        # to pass on
        name = type(exc).__name__
        raise CheckpointError(f"cannot load the checkpoint at step {step} ({name})") from exc
    folder = results_dir(run_dir)
    folder.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder, prefix=f".step-{step}-", suffix=".tmp"))
    try:
        np.random.seed(seed)  # the element shuffles of randomize=True draw from it
        details = ww.WeightWatcher(model=model).analyze(randomize=True)
        # Plots in a pass of their own: with randomize=True, plot=True also draws four
        # shuffled-ESD and MP-fit figures per layer, which nearly doubles the time.
        ww.WeightWatcher(model=model).analyze(plot=True, savefig=str(scratch))
        layers = [layer_row(row, step, scratch, folder) for _, row in details.iterrows()]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "run": run_dir.name,
        "step": step,
        "checkpoint": f"step-{step:09d}.pt",
        "weightwatcher": ww.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {"randomize": True, "seed": seed, "device": "cpu"},
        "layers": layers,
        "unanalysed": unanalysed(model, {layer["param"] for layer in layers}),
    }


def layer_row(row, step: int, scratch: Path, folder: Path) -> dict[str, Any]:
    """One row of WeightWatcher's details, with its plots moved to their final names."""
    layer = {column: json_value(row[column]) for column in COLUMNS if column in row}
    layer["param"] = f"{layer['longname']}.weight"
    layer["images"] = []
    for plot in PLOTS:
        made = scratch / f"ww.layer{layer['layer_id']}.{plot}.png"
        if made.is_file():
            name = image_name(step, layer["layer_id"], plot)
            os.replace(made, folder / name)
            layer["images"].append(name)
    return layer


def main(argv: list[str]) -> int:
    run_dir, step = Path(argv[0]), int(argv[1])
    seed = int(argv[2]) if len(argv) > 2 else 0
    try:
        result = analyse(run_dir, step, seed)
        write_json_atomic(result_path(run_dir, step), result)  # last: it names the images
    except Exception as exc:
        traceback.print_exc()
        first_line = (str(exc).strip().splitlines() or [""])[0]
        # the parent reports this line (FAILURE_PREFIX) and points at the log for the rest
        print(f"{FAILURE_PREFIX}{type(exc).__name__}: {first_line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
