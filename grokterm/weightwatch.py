"""``grokterm analyze RUN --weightwatcher``: WeightWatcher's own numbers for a checkpoint.

WeightWatcher runs in a child process (grokterm/engine/ww_analysis.py) whose output goes to
a log file, so nothing it prints or logs reaches the terminal or the TUI; this side imports
neither torch nor weightwatcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from grokterm.lab import Lab, LabError
from grokterm.lab.stream import read_records
from grokterm.lab.ww_results import (
    COMPARED,
    FAILURE_PREFIX,
    checkpoint_steps,
    choose_step,
    comparison,
    live_steps,
    log_path,
    read_result,
    result_path,
    results_dir,
    step_used,
)

CHILD_MODULE = "grokterm.engine.ww_analysis"


def run_child(run_dir: Path, step: int) -> Path:
    """WeightWatcher on the checkpoint at `step`, in a child process; its result file."""
    results_dir(run_dir).mkdir(exist_ok=True)
    log = log_path(run_dir, step)
    # CPU only: on a GPU WeightWatcher casts weights to float16.
    env = {**os.environ, "MPLBACKEND": "Agg", "CUDA_VISIBLE_DEVICES": ""}
    doing = f"WeightWatcher on the checkpoint at step {step}, in a child process…"
    waiting = Console(stderr=True).status(doing)
    with open(log, "wb") as out, waiting:
        done = subprocess.run(
            [sys.executable, "-m", CHILD_MODULE, str(run_dir), str(step)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if done.returncode != 0:
        raise LabError(
            f"WeightWatcher failed on {run_dir.name} at step {step} "
            f"(exit status {done.returncode}): {failure_reason(log)}; its output is in {log}"
        )
    return result_path(run_dir, step)


def failure_reason(log: Path) -> str:
    """The child's one-line account of its failure, else the last line it wrote."""
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    reasons = [
        line.removeprefix(FAILURE_PREFIX) for line in lines if line.startswith(FAILURE_PREFIX)
    ]
    return (reasons or lines or ["no output"])[-1]


def analyse_checkpoint(lab: Lab, run_id: str, wanted: int | None) -> dict[str, Any]:
    """Run WeightWatcher on the chosen checkpoint; its numbers beside the live ones."""
    run_dir = lab.run_dir(run_id)
    step = choose_step(run_id, checkpoint_steps(run_dir), wanted)
    result = read_result(run_child(run_dir, step))
    records = read_records(run_dir / "metrics.jsonl")
    return {**comparison(result, records), "asked_step": wanted, "dir": str(results_dir(run_dir))}


# --- the table --------------------------------------------------------------------------------


def number(value: float | None) -> str:
    if value is None:
        return "–"
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def weightwatcher_table(analysis: dict[str, Any]) -> Table:
    step = analysis["step"]
    title = (
        f"{analysis['run']}: WeightWatcher {analysis['weightwatcher']} on "
        f"{step_used(step, analysis['asked_step'])}"
    )
    table = Table(title=title, title_justify="left", caption=live_steps(analysis["rows"], step))
    table.caption_justify = "left"
    table.add_column("layer", overflow="fold")
    for header in COMPARED.values():
        table.add_column(f"{header} WW", justify="right")
        table.add_column(f"{header} live", justify="right", style="dim")
    table.add_column("note", overflow="fold")
    for row in analysis["rows"]:
        cells = []
        for column in COMPARED:
            cells += [number(row["ww"][column]), number(row["live"][column])]
        table.add_row(row["layer"], *cells, row["note"])
    return table


def print_weightwatcher(out: Console, analysis: dict[str, Any]) -> None:
    out.print(weightwatcher_table(analysis))
    images = len(analysis["images"])
    out.print(f"results and {images} ESD plot(s) in {analysis['dir']} (grokterm export shows them)")
