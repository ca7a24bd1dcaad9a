"""Streams at the papers' run lengths: a run of 10^7 steps (the anti-grokking presets),
written synthetically, before (every step's loss a JSON line) and after (the loss column).

For each format, in a fresh process so that its peak RSS is its own:
(a) the stream's size on disk;
(b) opening the run's monitor in the TUI (headless, 120x40): seconds from pushing the
    screen to the loss chart drawn with data, and the process's peak RSS after it;
(c) redrawing that loss chart (rebuild + render), median over --redraws, also for a run of
    10^3 steps: the chart's floor (plotext's own drawing), which a busy machine inflates.
The new format is written through MetricStream (its append rate is printed: the training
loop pays it every step); the old one is written directly as the JSON lines it held.

    python benchmarks/bench_streams.py [--steps 10000000] [--old-steps 1000000]

--old-steps is smaller by default: the old format at 10^7 steps takes minutes and GBs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLS, ROWS = 120, 40
PROBES = 400  # the anti-grokking presets probe at 400 log-spaced steps


def loss_at(step: int) -> float:
    """A loss-like curve with noise and one slingshot-like spike."""
    return 4.6 / (1 + step / 50) + 0.01 * math.sin(step * 12.9898) ** 2


def probe_steps(steps: int) -> set[int]:
    return {round(10 ** (math.log10(steps) * i / (PROBES - 1))) for i in range(PROBES)}


def probe(step: int) -> dict[str, float]:
    progress = math.log10(step + 1) / 7
    return {"train_acc": min(1.0, 2 * progress), "test_acc": progress,
            "train_loss": loss_at(step), "test_loss": 2 * loss_at(step),
            "weight_norm": 40 - 10 * progress}  # fmt: skip


def make_run(lab_dir: Path, steps: int, old_format: bool) -> tuple[str, float]:
    """A finished run of ``steps`` steps; returns its id and the seconds spent writing."""
    from grokterm.lab import Lab, MetricStream

    lab = Lab(lab_dir)
    config = {"schedule": {"steps": steps}}
    run_id = lab.create_run("long", None, config, []).id
    lab.update_run(run_id, status="finished", step=steps)
    path = lab.run_dir(run_id) / "metrics.jsonl"
    probes = probe_steps(steps)
    started = time.perf_counter()
    if old_format:
        with open(path, "w") as file:
            file.write(json.dumps({"step": 0, **probe(0)}, separators=(",", ":")) + "\n")
            for step in range(1, steps + 1):
                record = {"step": step, "loss": loss_at(step)}
                if step in probes:
                    record.update(probe(step))
                file.write(json.dumps(record, separators=(",", ":")) + "\n")
    else:
        with MetricStream(path) as stream:
            stream.append({"step": 0, **probe(0)})
            for step in range(1, steps + 1):
                record = {"step": step, "loss": loss_at(step)}
                if step in probes:
                    record.update(probe(step))
                stream.append(record)
    return run_id, time.perf_counter() - started


def stream_bytes(lab_dir: Path, run_id: str) -> int:
    return sum(p.stat().st_size for p in (lab_dir / "runs" / run_id).glob("metrics*"))


# --- in the child: open the monitor ---------------------------------------------------------


async def open_monitor(lab_dir: Path, run_id: str, redraws: int) -> dict[str, float]:
    from grokterm.lab import Lab
    from grokterm.tui.app import GrokApp
    from grokterm.tui.monitor_layout import DEFAULT_SLOTS, SlotContent
    from grokterm.tui.screens.monitor import MonitorScreen
    from grokterm.tui.widgets.chart import MetricChart

    # The monitor's slots are numbered from 1; the loss chart is a default slot's.
    LOSS_SLOT = f"#slot-{DEFAULT_SLOTS.index(SlotContent('chart', 'loss')) + 1}"

    app = GrokApp(Lab(lab_dir))
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        await pilot.pause()
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        app.push_screen(MonitorScreen(app.state, run_id))
        chart = None
        while chart is None or not drawn(chart):
            await asyncio.sleep(0.005)
            if isinstance(app.screen, MonitorScreen):
                chart = app.screen.query_one(LOSS_SLOT, MetricChart)
        opened = time.perf_counter() - started
        times = []
        for _ in range(redraws + 1):
            start = time.perf_counter()
            chart.rebuild()
            chart.render()
            times.append(time.perf_counter() - start)
        points = len(chart.curves[0].series)
    return {"open": opened, "rss_before": rss_before, "rss": peak_rss_mb(),
            "redraw": statistics.median(times[1:]), "points": points}  # fmt: skip


def drawn(chart) -> bool:
    step_loss = [c for c in chart.curves if c.label == "step loss"]
    return bool(step_loss) and len(step_loss[0].series) > 0 and not chart._dirty


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_in_child(lab_dir: Path, run_id: str, redraws: int) -> dict[str, float]:
    code = (
        "import asyncio, json, sys; from pathlib import Path; sys.path.insert(0, 'benchmarks');"
        "from bench_streams import open_monitor;"
        f"print(json.dumps(asyncio.run(open_monitor(Path({str(lab_dir)!r}), {run_id!r}, "
        f"{redraws}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main ----------------------------------------------------------------------------------


def bench(steps: int, old_format: bool, redraws: int) -> dict[str, float]:
    name = "old: every loss a JSON line" if old_format else "new: loss column"
    with tempfile.TemporaryDirectory() as tmp:
        lab_dir = Path(tmp) / "lab"
        run_id, wrote = make_run(lab_dir, steps, old_format)
        size = stream_bytes(lab_dir, run_id)
        result = measure_in_child(lab_dir, run_id, redraws)
    rate = f", {steps / wrote / 1e6:.2f} M appends/s" if not old_format else ""
    print(
        f"{name}, {steps:,} steps: {size / 1e6:.0f} MB on disk (written in {wrote:.1f} s{rate}); "
        f"monitor opened with the loss chart drawn in {result['open']:.2f} s, peak RSS "
        f"{result['rss']:.0f} MB (TUI before the monitor {result['rss_before']:.0f} MB); "
        f"loss chart redraw {result['redraw'] * 1e3:.1f} ms ({result['points']:,} points)"
    )
    return {**result, "size": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10**7, help="steps of the new-format run")
    parser.add_argument("--old-steps", type=int, default=10**6, help="steps of the old one")
    parser.add_argument("--redraws", type=int, default=20)
    args = parser.parse_args()
    floor = bench(10**3, old_format=False, redraws=args.redraws)
    old = bench(args.old_steps, old_format=True, redraws=args.redraws)
    new = bench(args.steps, old_format=False, redraws=args.redraws)
    print()
    print(
        f"monitor open: old {args.old_steps:.0e} steps {old['open']:.2f} s / {old['rss']:.0f} MB, "
        f"new {args.steps:.0e} steps {new['open']:.2f} s / {new['rss']:.0f} MB (targets 1 s, "
        f"300 MB); loss chart redraw old {old['redraw'] * 1e3:.0f} ms, new "
        f"{new['redraw'] * 1e3:.0f} ms (target 30 ms), 10^3 steps {floor['redraw'] * 1e3:.0f} ms, "
        f"ratio new/10^3 {new['redraw'] / floor['redraw']:.1f}; bytes per step old "
        f"{old['size'] / args.old_steps:.1f}, new {new['size'] / args.steps:.1f}"
    )


if __name__ == "__main__":
    main()
