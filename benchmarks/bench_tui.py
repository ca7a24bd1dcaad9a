"""TUI speed, as ratios measured in one run (DESIGN §1.6: no timed assertions in tests).

(a) Start-up: wall time from launching `grokterm --lab L` (a lab of 50 runs) on a pseudo
    terminal of 120x40 to its first frame (the runs screen painted) and to its runs table
    filled, against a bare Textual "hello" App on the same terminal, alternating the two
    and taking medians. Also the import time of grokterm.tui.app (against textual.app) in a
    fresh interpreter, and whether that import pulls in torch or weightwatcher.
(b) Redraw: one MetricChart filling a 120x40 screen, the median time of rebuild() +
    render() over a 10^6-point series against the same chart over 10^3 points; then the
    same with two curves, EMA 0.97, five event labels and a reference line.
(c) A busy lab: 300 runs, 100 of them live (a writer process appends metrics to their
    streams and beats their status.json heartbeats twice a second). First paint, the
    answer to a key on the runs screen (space marks a row: from the key to the status
    line's "· k marked" on the pty), and the TUI process's CPU use over an idle interval
    (/proc/PID/stat), as a share of one core. Targets: paint <= 1 s, key <= 100 ms,
    idle CPU <= 10%.
(d) The monitor of one finished run shaped like a real one (10^5 per-step losses, 400 probe
    records with per-layer alphas, spectral energy, traps and ~40 other metrics): time from
    pushing the screen to every chart drawn (its first full paint), and the median time of
    one full redraw of the screen (update_charts, then every shown chart's rebuild + render).

    python benchmarks/bench_tui.py [--repeats 7] [--redraws 20] [--runs 50]
        [--busy-runs 300] [--live 100] [--keys 15] [--idle 10] [--only busy|redraw|monitor]

Prints one summary line per figure at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import math
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from pathlib import Path

COLS, ROWS = 120, 40
TIMEOUT = 60.0

HELLO_APP = textwrap.dedent(
    """
    from textual.app import App
    from textual.widgets import Footer, Header, Static

    class Hello(App):
        def compose(self):
            yield Header()
            yield Static("hello from a bare Textual app")
            yield Footer()

    Hello().run()
    """
)


# --- (a) start-up --------------------------------------------------------------------------


def make_lab(root: Path, runs: int, live: int | None = None) -> list[str]:
    """A lab of `runs` runs in every status, written through the lab-log module; with
    `live`, the first `live` runs are running (their process: this one). Returns the ids
    of the running runs."""
    from grokterm.lab import Lab, MetricStream, write_json_atomic
    from grokterm.presets import load_experiment

    lab = Lab(root)
    preset, experiment = load_experiment("modadd-mlp")
    config = experiment.model_dump(mode="json")
    statuses = ["finished", "finished", "stopped", "crashed", "finished", "running"]
    if live is not None:
        statuses = statuses[:-1]
    running: list[str] = []
    for i in range(runs):
        run_id = lab.create_run(f"bench-{i % 7}", preset, config, ["bench"]).id
        status = statuses[i % len(statuses)]
        if live is not None:
            status = "running" if i < live else status
        summary = {"t2": 150 + i, "t4": 4450 + 10 * i, "phase": "grokking",
                   "train_acc": 1.0, "test_acc": 0.95 + (i % 5) / 100}
        if status == "running":
            running.append(run_id)
            lab.update_run(run_id, status="running", pid=os.getpid())
            write_json_atomic(
                lab.run_dir(run_id) / "status.json",
                {"status": "running", "pid": os.getpid(), "host": None,
                 "heartbeat": time.time() + 3600, "step": 1000 + i, "total": 6000,
                 "latest": {"train_acc": 0.9, "test_acc": 0.3}},
            )
        else:
            lab.update_run(run_id, status=status, step=6000, summary=summary)
        with MetricStream(lab.run_dir(run_id) / "metrics.jsonl") as stream:
            for step in range(0, 6001, 50):
                stream.append({"step": step, "loss": 1.0 / (1 + step), "train_acc": 0.5})
    for i in range(0, runs, 3):
        run_id = lab.list_runs()[i].id
        lab.add_note(f"note on run {i}", run_id=run_id, step=100)
    return running


def run_on_pty(argv: list[str], markers: list[bytes], env: dict[str, str]) -> list[float]:
    """Seconds from fork to the first output containing each marker, in order."""
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the program, on the pty
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    seen: list[float] = []
    output = b""
    try:
        while len(seen) < len(markers):
            if time.perf_counter() - started > TIMEOUT:
                raise RuntimeError(f"{argv}: no {markers[len(seen)]!r} after {TIMEOUT:.0f} s")
            ready, _, _ = select.select([fd], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                raise RuntimeError(f"{argv} ended before {markers[len(seen)]!r}: {output[-500:]!r}")
            output += chunk
            now = time.perf_counter() - started
            while len(seen) < len(markers) and markers[len(seen)] in output:
                seen.append(now)
    finally:
        stop_pty_child(pid, fd)
    return seen


def stop_pty_child(pid: int, fd: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                os.read(fd, 1 << 16)  # keep the pty drained so the child can exit
            except OSError:
                pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)


def import_seconds(module: str) -> tuple[float, list[str]]:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        f"import {module}\n"
        "print(time.perf_counter() - t)\n"
        "print(','.join(m for m in ('torch', 'weightwatcher') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    heavy = out[1].split(",") if len(out) > 1 and out[1] else []
    return float(out[0]), heavy


def bench_startup(repeats: int, runs: int) -> dict[str, float | list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("GROKTERM_LAB", "COLORTERM")}
    env.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    with tempfile.TemporaryDirectory() as tmp:
        lab = Path(tmp) / "lab"
        t = time.perf_counter()
        make_lab(lab, runs)
        print(f"lab of {runs} runs written in {time.perf_counter() - t:.1f} s")
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO_APP)
        grokterm = [sys.executable, "-m", "grokterm", "--lab", str(lab)]
        # "palette" is in the footer: the whole first frame has been written.
        table_filled = f"{runs} of {runs} runs".encode()
        hello_times, paint_times, table_times = [], [], []
        for i in range(repeats + 1):  # the first round warms the file cache, not counted
            h = run_on_pty([sys.executable, str(hello)], [b"hello from a bare", b"palette"], env)
            g = run_on_pty(grokterm, [b"palette", table_filled], env)
            if i == 0:
                continue
            hello_times.append(h[-1])
            paint_times.append(g[0])
            table_times.append(g[1])
            print(
                f"round {i}: hello first frame {h[-1]:.3f} s, grokterm first frame "
                f"{g[0]:.3f} s, table filled {g[1]:.3f} s"
            )
    imports = [import_seconds("grokterm.tui.app") for _ in range(repeats)]
    textual_imports = [import_seconds("textual.app")[0] for _ in range(repeats)]
    heavy = sorted({name for _, names in imports for name in names})
    return {
        "hello": statistics.median(hello_times),
        "paint": statistics.median(paint_times),
        "table": statistics.median(table_times),
        "import": statistics.median(seconds for seconds, _ in imports),
        "import_textual": statistics.median(textual_imports),
        "heavy": heavy,
    }


# --- (b) redraw ----------------------------------------------------------------------------


def series_of(points: int):
    from grokterm.tui.series import Series

    series = Series()
    for step in range(1, points + 1):  # a loss-like curve with noise and a spike
        value = 4.6 / (1 + step / 50) + 0.01 * math.sin(step * 12.9898) ** 2
        series.add(step, 50.0 if step == int(points * 0.61) else value)
    return series


async def redraw_times(points: int, redraws: int, log_y: bool, busy: bool = False) -> list[float]:
    """busy: as a monitor panel draws it: two curves (the second with glyphs), EMA 0.97,
    five event labels and a reference line."""
    from textual.app import App

    from grokterm.tui.widgets.chart import Curve, Guide, Marker, MetricChart

    class ChartApp(App):
        def compose(self):
            yield MetricChart("loss", log_y=log_y, id="chart")

    app = ChartApp()
    times: list[float] = []
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        await pilot.pause()
        chart = app.query_one(MetricChart)
        assert (chart.size.width, chart.size.height) == (COLS, ROWS), chart.size
        chart.curves = [Curve("loss", series_of(points), "cyan+")]
        if busy:
            chart.curves.append(Curve("test", series_of(points), "orange+"))
            chart.configure(log_x=True, smoothing=0.97)
            at = (0.01, 0.1, 0.3, 0.6, 0.9)
            chart.markers = [Marker(int(points * f), f"t{i}") for i, f in enumerate(at)]
            chart.guides = (Guide(0.1, "ref"),)
        for _ in range(redraws + 1):
            start = time.perf_counter()
            chart.rebuild()
            text = chart.render()
            times.append(time.perf_counter() - start)
        assert "no data" not in text.plain
    return times[1:]  # the first one warms caches


def bench_redraw(redraws: int) -> dict:
    result = {}
    for busy in (False, True):
        for points in (10**3, 10**6):
            times = asyncio.run(redraw_times(points, redraws, log_y=True, busy=busy))
            result[points, busy] = statistics.median(times)
            what = f"{points:,} points" + (" x2, EMA, events" if busy else "")
            print(
                f"MetricChart {COLS}x{ROWS}, {what}: median {result[points, busy] * 1e3:.1f} ms "
                f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}) over {redraws} redraws"
            )
    return result


# --- (d) the monitor ----------------------------------------------------------------------

MONITOR_STEPS, MONITOR_PROBES = 100_000, 400
LAYERS = ("mlp.0.weight", "mlp.2.weight", "mlp.4.weight")


def probe_record(step: int) -> dict[str, float]:
    """One probe record with the metric families of a real run (DESIGN §5)."""
    x = step / MONITOR_STEPS
    record = {"step": step, "train_acc": min(1.0, 0.1 + 3 * x), "test_acc": 0.1 + 0.8 * x,
              "train_loss": 2.3 * (1 - x) + 1e-4, "test_loss": 2.3 * (1 - 0.8 * x),
              "weight_norm": 90 - 40 * x, "last_layer_norm": 15 - 5 * x, "cos_dist": 1e-3,
              "alpha_mean": 5 - 2 * x, "alpha_min": 4 - 2.2 * x,
              "spectral/energy": 1 + math.sin(step / 997.0) ** 2, "spectral/activity": x}
    for i, layer in enumerate(LAYERS):
        for family in ("alpha", "alpha_weighted", "alpha_sigma", "alpha_tail", "norm",
                       "stable_rank", "log_spectral_norm"):
            record[f"{family}/{layer}"] = 6 - (3 + i) * x + 0.01 * i
    if step % 10_000 == 0:
        record["traps_total"] = float(step > 50_000)
        record.update({f"traps/{layer}": float(step > 50_000) for layer in LAYERS})
    return record


def make_monitor_lab(root: Path) -> str:
    from grokterm.lab import Lab, MetricStream
    from grokterm.presets import load_experiment

    lab = Lab(root)
    preset, experiment = load_experiment("omnigrok-mnist")
    run_id = lab.create_run("bench-monitor", preset, experiment.model_dump(mode="json"), []).id
    probes = set(range(0, MONITOR_STEPS + 1, MONITOR_STEPS // MONITOR_PROBES))
    with MetricStream(lab.run_dir(run_id) / "metrics.jsonl") as stream:
        for step in range(MONITOR_STEPS + 1):
            record = probe_record(step) if step in probes else {"step": step}
            if step:
                record["loss"] = 2.3 / (1 + step / 100) + 1e-3 * math.sin(step) ** 2
            stream.append(record)
    lab.update_run(run_id, status="finished", step=MONITOR_STEPS,
                   summary={"steps_per_second": 190.0, "train_seconds": 520.0})
    return run_id


async def monitor_times(root: Path, run_id: str, redraws: int) -> tuple[float, list[float]]:
    from grokterm.lab import Lab
    from grokterm.tui import messages
    from grokterm.tui.app import GrokApp
    from grokterm.tui.screens.monitor import MonitorScreen
    from grokterm.tui.widgets.chart import MetricChart

    app = GrokApp(Lab(root))
    async with app.run_test(size=(COLS, ROWS)) as pilot:
        while not app.state.snapshot.loaded:
            await pilot.pause(0.01)
        start = time.perf_counter()
        app.post_message(messages.OpenMonitor(run_id))
        while True:
            screen = app.screen
            if isinstance(screen, MonitorScreen) and monitor_drawn(screen):
                break
            await pilot.pause(0.005)
        paint = time.perf_counter() - start
        charts = [chart for chart in screen.query(MetricChart) if chart.display]
        times, cpu = [], []
        for _ in range(redraws + 1):
            begin, begin_cpu = time.perf_counter(), time.thread_time()
            screen._drawn_version = -1
            screen.update_charts()
            for chart in charts:
                chart.rebuild()
                chart.render()
            times.append(time.perf_counter() - begin)
            cpu.append(time.thread_time() - begin_cpu)
    return paint, times[1:], cpu[1:], len(charts)


def monitor_drawn(screen) -> bool:
    from grokterm.tui.widgets.chart import MetricChart

    charts = [chart for chart in screen.query(MetricChart) if chart.display]
    drawn = all(chart.curves and not chart._dirty for chart in charts)
    return bool(charts) and drawn and screen._drawn_version == screen.tail.series.version


def bench_monitor(redraws: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        run_id = make_monitor_lab(root)
        paint, times, cpu, charts = asyncio.run(monitor_times(root, run_id, redraws))
    result = {"paint": paint, "redraw": statistics.median(times), "max": max(times)}
    result["cpu"] = statistics.median(cpu)
    print(
        f"monitor {COLS}x{ROWS} ({MONITOR_STEPS:,} steps, {MONITOR_PROBES} probes): first full "
        f"paint {paint:.3f} s, full redraw of {charts} charts median {result['redraw'] * 1e3:.1f} "
        f"ms (max {result['max'] * 1e3:.1f}), CPU of the UI thread {result['cpu'] * 1e3:.1f} ms, "
        f"over {redraws}"
    )
    return result


# --- (c) a busy lab ------------------------------------------------------------------------

BEAT_SECONDS = 1.0  # a live run's metric flush and heartbeat interval, as a worker's


def write_live_runs(root: Path, run_ids: list[str], stop) -> None:
    """Stands in for the live runs' processes: each beat, one metric record per run (flushed)
    and a fresh status.json heartbeat naming the bench process, which stays alive."""
    from grokterm.lab import Lab, MetricStream, write_json_atomic

    lab = Lab(root)
    pid = os.getppid()
    streams = {run_id: MetricStream(lab.run_dir(run_id) / "metrics.jsonl") for run_id in run_ids}
    step = 6000
    while not stop.is_set():
        step += 10
        for run_id, stream in streams.items():
            stream.append({"step": step, "loss": 1.0 / (1 + step), "train_acc": 0.9})
            stream.flush()
            write_json_atomic(
                lab.run_dir(run_id) / "status.json",
                {"status": "running", "pid": pid, "host": None, "heartbeat": time.time(),
                 "step": step, "total": 6000,
                 "latest": {"train_acc": 0.9, "test_acc": 0.3 + step / 1e5}},
            )
        stop.wait(BEAT_SECONDS)
    for stream in streams.values():
        stream.close()


class PtySession:
    """A program on a pseudo terminal, driven by keys and read for markers."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.started = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.output = b""

    def read(self, seconds: float) -> None:
        """Keep reading (the program blocks on a full pty) for `seconds`."""
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            self._read_chunk(min(left, 0.05))

    def _read_chunk(self, wait: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                raise RuntimeError(f"the program ended: {self.output[-500:]!r}")
            self.output += chunk

    def expect(self, marker: bytes, since: int = 0) -> float:
        """perf_counter time when `marker` first shows in the output after offset `since`."""
        deadline = time.perf_counter() + TIMEOUT
        while marker not in self.output[since:]:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no {marker!r} after {TIMEOUT:.0f} s")
            self._read_chunk(0.005)
        return time.perf_counter()

    def key_answer(self, key: bytes, marker: bytes) -> float:
        """Seconds from sending `key` to `marker` showing in what the program writes next."""
        since = len(self.output)
        sent = time.perf_counter()
        os.write(self.fd, key)
        return self.expect(marker, since) - sent

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime+stime

    def close(self) -> None:
        stop_pty_child(self.pid, self.fd)


def bench_busy_lab(runs: int, live: int, keys: int, idle: float) -> dict[str, float]:
    import multiprocessing

    env = {k: v for k, v in os.environ.items() if k not in ("GROKTERM_LAB", "COLORTERM")}
    env.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    with tempfile.TemporaryDirectory() as tmp:
        lab = Path(tmp) / "lab"
        t = time.perf_counter()
        running = make_lab(lab, runs, live=live)
        print(f"busy lab: {runs} runs ({len(running)} live) written in "
              f"{time.perf_counter() - t:.1f} s")
        stop = multiprocessing.get_context("fork").Event()
        writer = multiprocessing.get_context("fork").Process(
            target=write_live_runs, args=(lab, running, stop), daemon=True
        )
        writer.start()
        session = PtySession([sys.executable, "-m", "grokterm", "--lab", str(lab)], env)
        try:
            paint = session.expect(b"palette") - session.started
            filled = session.expect(f"{runs} of {runs} runs".encode()) - session.started
            session.read(3.0)  # settle: the first refreshes of the live runs
            answers = []
            for k in range(1, keys + 1):
                answers.append(session.key_answer(b" ", f"· {k} marked".encode()))
                os.write(session.fd, b"\x1b[B")  # down: the next key marks the next row
                session.read(0.3)
            cpu_before, wall_before = session.cpu_seconds(), time.perf_counter()
            session.read(idle)
            cpu = (session.cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
        finally:
            session.close()
            stop.set()
            writer.join(10)
    print(f"busy lab: first frame {paint:.3f} s, table filled {filled:.3f} s")
    print("busy lab: key answers (ms) " + " ".join(f"{a * 1e3:.0f}" for a in answers))
    return {"paint": paint, "filled": filled, "key": statistics.median(answers),
            "key_max": max(answers), "cpu": cpu}


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="start-up rounds")
    parser.add_argument("--redraws", type=int, default=20, help="chart redraws per size")
    parser.add_argument("--runs", type=int, default=50, help="runs in the start-up lab")
    parser.add_argument("--busy-runs", type=int, default=300, help="runs in the busy lab")
    parser.add_argument("--live", type=int, default=100, help="live runs in the busy lab")
    parser.add_argument("--keys", type=int, default=15, help="keys timed on the busy lab")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--only", choices=["busy", "redraw", "monitor"], help="only this part")
    args = parser.parse_args()

    if args.only == "redraw":
        print_redraw(bench_redraw(args.redraws), args)
        return
    if args.only == "monitor":
        bench_monitor(args.redraws)
        return

    busy = bench_busy_lab(args.busy_runs, args.live, args.keys, args.idle)
    print_busy(busy, args)
    if args.only == "busy":
        return
    start = bench_startup(args.repeats, args.runs)
    redraw = bench_redraw(args.redraws)

    print()
    print(
        f"start-up: grokterm --lab <{args.runs} runs> first frame {start['paint']:.3f} s, "
        f"bare Textual hello {start['hello']:.3f} s, ratio {start['paint'] / start['hello']:.2f} "
        f"(median of {args.repeats}, {COLS}x{ROWS} pty)"
    )
    print(
        f"start-up: runs table filled {start['table']:.3f} s, "
        f"ratio {start['table'] / start['hello']:.2f} to the hello app's first frame"
    )
    print(
        f"import grokterm.tui.app {start['import']:.3f} s vs textual.app "
        f"{start['import_textual']:.3f} s (ratio {start['import'] / start['import_textual']:.2f}); "
        f"torch/weightwatcher imported: {', '.join(start['heavy']) or 'no'}"
    )
    print_redraw(redraw, args)
    print_busy(busy, args)


def print_redraw(redraw: dict, args: argparse.Namespace) -> None:
    for busy, what in ((False, "one curve"), (True, "two curves, EMA 0.97, 5 events")):
        small, large = redraw[10**3, busy], redraw[10**6, busy]
        print(
            f"redraw: MetricChart {COLS}x{ROWS} rebuild+render, {what}: 10^6 points "
            f"{large * 1e3:.1f} ms vs 10^3 points {small * 1e3:.1f} ms, ratio "
            f"{large / small:.1f} (median of {args.redraws})"
        )


def print_busy(busy: dict[str, float], args: argparse.Namespace) -> None:
    print(
        f"busy lab ({args.busy_runs} runs, {args.live} live): first frame {busy['paint']:.3f} s "
        f"(target <= 1 s), table filled {busy['filled']:.3f} s, key answer median "
        f"{busy['key'] * 1e3:.0f} ms, max {busy['key_max'] * 1e3:.0f} ms over {args.keys} "
        f"(target <= 100 ms), idle CPU {busy['cpu']:.1%} of a core over {args.idle:.0f} s "
        f"(target <= 10%)"
    )


if __name__ == "__main__":
    main()
