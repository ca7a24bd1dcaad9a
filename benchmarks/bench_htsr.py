"""HTSR probes (grokterm/probes/htsr.py) against WeightWatcher 0.7.7, as ratios from one run.

Two models at their preset initialisation: `nanda` (1-layer transformer, d 128, d_mlp 512,
vocab 114, 113 classes; 8 matrices WeightWatcher analyses) and `omnigrok-mnist` (MLP
784-200-200-10, ×8 init; 3 matrices). For each, the median wall time of

* alpha:         `htsr_metrics(model)` (float32 Gram; also float64) vs `analyze()`
* alpha + traps: `htsr_metrics` + `traps_metrics` vs `analyze(randomize=True)`

torch and the BLAS pools run on one thread (WeightWatcher's SciPy SVDs too); the two sides
alternate within each repeat, so a machine that slows down mid-run hurts both alike.
Targets: alpha ≥ 4× faster, traps ≥ 20× faster. Also prints the largest |Δα| against
WeightWatcher (float64 and float32) as a sanity check.

    python benchmarks/bench_htsr.py [--repeats 15] [--trap-repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import statistics
import time
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from grokterm.engine.models import build_model
from grokterm.presets import load_experiment
from grokterm.probes import htsr


def models() -> dict[str, torch.nn.Module]:
    _, nanda = load_experiment("nanda")
    _, mnist = load_experiment("omnigrok-mnist")
    torch.manual_seed(0)
    return {
        "nanda": build_model(nanda.model, vocab_size=114, input_dim=0, n_classes=113),
        "omnigrok-mnist": build_model(mnist.model, vocab_size=0, input_dim=784, n_classes=10),
    }


def import_weightwatcher():
    """Import weightwatcher without its process-wide side effects leaking into this one."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        with contextlib.redirect_stderr(io.StringIO()):
            import weightwatcher
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    return weightwatcher


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def quiet_analyze(ww, model, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ww.WeightWatcher(model=model).analyze(**kwargs)


def max_alpha_error(model, details, float64: bool) -> float:
    fits = htsr.layer_fits(htsr.layer_matrices(model), float64=float64)
    return max(
        abs(fits[f"{row.longname}.weight"]["alpha"] - row.alpha) for _, row in details.iterrows()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="alpha timing repeats")
    parser.add_argument("--trap-repeats", type=int, default=5, help="randomize timing repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ww = import_weightwatcher()
    ratios: dict[str, float] = {}
    with threadpool_limits(limits=1):
        for name, model in models().items():
            details = quiet_analyze(ww, model)
            err64 = max_alpha_error(model, details, True)
            err32 = max_alpha_error(model, details, False)
            ours32, ours64, theirs = [], [], []
            for _ in range(args.repeats):
                ours32.append(timed(lambda m=model: htsr.htsr_metrics(m))[0])
                theirs.append(timed(lambda m=model: quiet_analyze(ww, m))[0])
                ours64.append(timed(lambda m=model: htsr.htsr_metrics(m, float64=True))[0])
            ours_traps, theirs_traps = [], []
            for i in range(args.trap_repeats):
                ours_traps.append(
                    timed(lambda m=model, s=i: (htsr.htsr_metrics(m), htsr.traps_metrics(m, s)))[0]
                )
                np.random.seed(i)
                theirs_traps.append(timed(lambda m=model: quiet_analyze(ww, m, randomize=True))[0])
            med = {
                key: statistics.median(values)
                for key, values in {
                    "ours32": ours32,
                    "ours64": ours64,
                    "ww": theirs,
                    "ours_traps": ours_traps,
                    "ww_traps": theirs_traps,
                }.items()
            }
            ratios[f"{name} alpha"] = med["ww"] / med["ours32"]
            ratios[f"{name} traps"] = med["ww_traps"] / med["ours_traps"]
            print(f"{name}: {len(details)} layers analysed by WeightWatcher")
            print(
                f"  alpha        ours f32 {med['ours32'] * 1e3:7.1f} ms | ours f64"
                f" {med['ours64'] * 1e3:7.1f} ms | weightwatcher {med['ww'] * 1e3:7.1f} ms"
                f"  -> {med['ww'] / med['ours32']:.1f}x (f32), {med['ww'] / med['ours64']:.1f}x"
                " (f64)"
            )
            print(
                f"  alpha+traps  ours {med['ours_traps'] * 1e3:7.1f} ms | weightwatcher"
                f" randomize {med['ww_traps'] * 1e3:7.1f} ms"
                f"  -> {med['ww_traps'] / med['ours_traps']:.1f}x"
            )
            print(f"  max |Δα| vs weightwatcher: float64 {err64:.1e}, float32 {err32:.1e}")
    print()
    targets = {"alpha": 4.0, "traps": 20.0}
    for key, ratio in ratios.items():
        target = targets[key.split()[-1]]
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        print(f"{key:22s} {ratio:6.1f}x (target ≥ {target:.0f}x) {verdict}")
    if not all(math.isfinite(r) for r in ratios.values()):
        raise SystemExit("a timing failed")


if __name__ == "__main__":
    main()
