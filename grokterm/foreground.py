"""`grokterm run` without --detach: train in this process behind a rich progress bar."""

from __future__ import annotations

import io
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from grokterm.config import Experiment
from grokterm.lab import Lab
from grokterm.lab.records import ENDED_CLEANLY, PHASE_MARKS


class QuietWhenHungUp(io.TextIOBase):
    """Standard output that falls silent once its terminal is gone (SIGHUP, a dropped SSH
    connection) instead of failing the run with EIO on the next progress update."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except OSError:
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError:
                self.gone = True

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def progress_bar(out: Console) -> Progress:
    return Progress(
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("train {task.fields[train]} test {task.fields[test]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    )


def run_in_foreground(lab: Lab, run_id: str, experiment: Experiment, out: Console) -> int:
    from grokterm.engine.stopping import StopFlag, install_stop_handlers

    stop = StopFlag()
    install_stop_handlers(stop, hang_up_stops=True)
    from grokterm.engine.worker import UserError, execute

    total = experiment.schedule.steps
    out.print(f"run [bold]{run_id}[/] in {lab.root}  (Ctrl-C stops it cleanly with a checkpoint)")
    with progress_bar(out) as progress:
        bar = progress.add_task(run_id, total=total, rate="", train="–", test="–")

        def on_event(event: dict[str, Any]) -> None:
            progress.console.print(
                f"  step {event['step']:>7}  {event['kind']:<8} {event['detail']}"
            )

        def on_beat(step: int, probe: dict[str, Any]) -> None:
            task = progress.tasks[bar]
            rate = f"{task.speed:,.0f} steps/s" if task.speed else ""
            progress.update(
                bar,
                completed=step,
                rate=rate,
                train=_pct(probe.get("train_acc")),
                test=_pct(probe.get("test_acc")),
            )

        try:
            outcome = execute(lab, run_id, on_event=on_event, on_beat=on_beat, stop=stop)
        except UserError as exc:
            out.print(f"[red]error:[/] {exc}")
            return 1
        progress.update(bar, completed=outcome.step)
    summary = outcome.summary
    out.print(
        f"{run_id} {outcome.status} at step {outcome.step}"
        + (f": {outcome.reason}" if outcome.reason else "")
    )
    if summary.get("phase"):
        marks = "  ".join(f"{k}={summary[k]}" for k in PHASE_MARKS if summary.get(k))
        out.print(f"outcome: [bold]{summary['phase']}[/]  {marks}")
    if summary.get("steps_per_second"):
        out.print(
            f"train {_pct(summary.get('train_acc'))}  test {_pct(summary.get('test_acc'))}  "
            f"{summary['steps_per_second']:,.0f} steps/s on {summary['device']}"
        )
    return 0 if outcome.status in ENDED_CLEANLY else 1


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:6.1%}"
