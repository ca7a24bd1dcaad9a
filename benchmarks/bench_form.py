"""Keystroke echo in the launch form (issue #12), measured in a headless app.

The real LaunchScreen (preset modadd-mlp) runs headless at 120x40 with optim.weight_decay
focused. Keys are posted to the App the way the terminal driver posts them, one every
``--interval`` ms (a typist) or all at once (``--burst``: key repeat, a paste-like typist,
tmux send-keys). The keys alternate between emptying the field with backspaces and typing
a number, so that every key changes the field's value.

For each key: echo = from the key's post to the Input's value taking it in (its
Input.Changed), and frame = to the first screen update composed after that. Prints
p50/p90/p99/max of both, and whether the field ended with exactly what was typed.

    python benchmarks/bench_form.py [--interval 80] [--keys 120] [--repeats 3] [--burst]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual import events
from textual.app import App
from textual.widgets import Input

from grokterm.lab import Lab
from grokterm.tui.screens.launch import LaunchScreen
from grokterm.tui.widgets.config_form import ConfigForm

FIELD = "optim.weight_decay"
START = "1.0"
WORDS = ["2.5", "0.1", "1.0", "10", "0.05"]
KEY_NAMES = {".": "full_stop", "-": "minus"}


class BenchApp(App):
    def __init__(self, lab: Lab) -> None:
        super().__init__()
        self.lab = lab
        self.frames: list[float] = []

    def on_mount(self) -> None:
        self.push_screen(LaunchScreen(self.lab))

    def _display(self, screen, renderable) -> None:  # type: ignore[override]
        if renderable is not None:
            self.frames.append(time.perf_counter())
        super()._display(screen, renderable)


def script(count: int) -> tuple[list[str], str]:
    """Keys that each change the field (START, cursor at its end), and the text left."""
    keys: list[str] = []
    text = START
    for word in WORDS * (count // 4 + 1):
        keys += ["backspace"] * len(text) + list(word)
        text = word
        if len(keys) >= count:
            break
    return keys, text


def key_event(key: str) -> events.Key:
    if len(key) == 1:
        return events.Key(KEY_NAMES.get(key, key), key)
    return events.Key(key, None)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def one_run(
    interval: float, count: int, burst: bool
) -> tuple[list[float], list[float], bool]:
    with tempfile.TemporaryDirectory() as tmp:
        app = BenchApp(Lab(Path(tmp) / "lab"))
        async with app.run_test(size=(120, 40)) as pilot:
            while not isinstance(app.screen, LaunchScreen) or not app.screen.query(ConfigForm):
                await pilot.pause(0.05)
            form = app.screen.query_one(ConfigForm)
            control = form.field(FIELD).control
            assert isinstance(control, Input) and control.value == START
            control.focus()
            await pilot.pause(0.5)
            control.action_end()  # focusing selected the text; the keys edit from its end
            await pilot.pause(0.2)
            changes: list[float] = []
            stamp = lambda _value: changes.append(time.perf_counter())  # noqa: E731
            control.watch(control, "value", stamp, init=False)
            keys, expected = script(count)
            posted: list[float] = []
            for key in keys:
                posted.append(time.perf_counter())
                app.post_message(key_event(key))
                if not burst:
                    await asyncio.sleep(interval)
            deadline = time.monotonic() + 30
            while len(changes) < len(keys) and time.monotonic() < deadline:
                if changes and time.perf_counter() - changes[-1] > 2 and form.settled:
                    break  # keys were lost or merged: nothing more will change
                await asyncio.sleep(0.01)
            await pilot.pause(0.2)
            exact = control.value == expected
            echo = [(done - sent) * 1000 for sent, done in zip(posted, changes, strict=False)]
            frames = []
            for done, sent in zip(changes, posted, strict=False):
                after = next((f for f in app.frames if f >= done), None)
                if after is not None:
                    frames.append((after - sent) * 1000)
            if not exact:
                print(f"  field ended {control.value!r}, typed {expected!r}", file=sys.stderr)
            return echo, frames, exact


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: no samples"
    return (
        f"{label}: n={len(values)} p50={statistics.median(values):.1f} ms "
        f"p90={percentile(values, 0.90):.1f} ms p99={percentile(values, 0.99):.1f} ms "
        f"max={max(values):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=80.0, help="ms between keys")
    parser.add_argument("--keys", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--burst", action="store_true", help="post every key at once")
    args = parser.parse_args()
    echo: list[float] = []
    frames: list[float] = []
    exact = 0
    for _ in range(args.repeats):
        e, f, ok = asyncio.run(one_run(args.interval / 1000, args.keys, args.burst))
        echo += e
        frames += f
        exact += ok
    mode = "burst" if args.burst else f"one key every {args.interval:.0f} ms"
    print(f"launch form, {FIELD}, {mode}, {args.repeats} runs of {args.keys} keys")
    print(summary("echo  (key posted -> Input.value)", echo))
    print(summary("frame (key posted -> next screen update)", frames))
    print(f"field ended exactly as typed in {exact} of {args.repeats} runs")


if __name__ == "__main__":
    main()
