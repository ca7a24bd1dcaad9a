"""Helpers for the fault suite: short real runs in subprocesses, a TUI on a pseudo-terminal.

Everything here drives grokterm from outside, as a user or a crash would: through the CLI,
signals, the files of the lab and a terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock
import pyte

from grokterm import launcher, live, processes
from grokterm.lab import Lab
from grokterm.lab.stream import read_records

# p=23 memorizes in ~40 steps and a 1,500-step run trains in ~8 s on one core.
SHORT = [
    "--set", "task.p=23",
    "--set", "schedule.steps=1500",
    "--set", "schedule.eval_every=20",
    "--set", "schedule.checkpoint_every=100",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
DEADLINE = 240.0  # generous: CI runs these beside the rest of the suite on 2 cores


def grokterm(lab: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grokterm", "--lab", str(lab), *args],
        capture_output=True,
        input=stdin,
        env=ENV,
        timeout=DEADLINE,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """Exit status 2 and exactly one line on stderr, no traceback; returns that line."""
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokterm: error: "), err
    return lines[0]


def write_notes_at_once(lab: Path, run_ref: str, count: int) -> set[str]:
    """``count`` `grokterm note` processes started together; returns the texts they wrote."""
    texts = [f"cli note {n}" for n in range(count)]
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "grokterm", "--lab", str(lab), "note", run_ref, text],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for text in texts
    ]  # fmt: skip
    for proc in writers:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return set(texts)


def start_detached(lab: Path, *extra: str) -> str:
    result = grokterm(lab, "run", "modadd-mlp", *SHORT, *extra, "--detach")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def wait_for(predicate: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_for_step(lab: Lab, run_id: str, step: int) -> dict[str, Any]:
    def reached():
        status = live.read_status(lab, run_id)
        return status if (status.step or 0) >= step else None

    return wait_for(reached, f"{run_id} to reach step {step}")


def pause_at_step(lab: Lab, run_id: str, step: int) -> int:
    """Wait for the run to reach ``step``, then suspend it (SIGSTOP, as ctrl+z does) so that
    however fast the machine, it is still training when the test acts; returns its pid.
    `grokterm stop` wakes it (SIGCONT), or send SIGCONT."""
    status = wait_for_step(lab, run_id, step)
    suspend(lab, status.pid)
    assert live.read_status(lab, run_id).status == "running", "it ended before the pause"
    return status.pid


def suspend(lab: Lab, pid: int) -> None:
    """SIGSTOP a run, but never while it holds the lab-log lock: a stopped holder would block
    every other writer (notes, resume) until the test kills it."""
    while True:
        os.kill(pid, signal.SIGSTOP)
        try:
            with filelock.FileLock(lab.root / "lablog.lock", timeout=0):
                return
        except filelock.Timeout:  # the run, or another writer, is inside a write
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)


def pause_each_at_step(lab: Lab, steps: dict[str, int]) -> None:
    """pause_at_step for several runs at once: each is suspended as soon as it reaches its
    step, so none can run to its end while the test waits for another."""
    pending = dict(steps)

    def pause_those_there() -> bool:
        for run_id, step in list(pending.items()):
            status = live.read_status(lab, run_id)
            if (status.step or 0) >= step:
                suspend(lab, status.pid)
                assert live.read_status(lab, run_id).status == "running", f"{run_id} ended"
                del pending[run_id]
        return not pending

    wait_for(pause_those_there, f"runs to reach their steps {steps}")


def wait_until_done(lab: Lab, run_id: str) -> dict[str, Any]:
    view = launcher.wait_until_done(lab, run_id, timeout=DEADLINE)
    assert view.status not in ("queued", "running"), run_log_text(lab, run_id)
    return view


def run_log_text(lab: Lab, run_id: str) -> str:
    path = launcher.run_log(lab, run_id)
    return path.read_text(errors="replace") if path.exists() else ""


def steps_of(lab: Lab, run_id: str) -> list[int]:
    return [record["step"] for record in read_records(lab.run_dir(run_id) / "metrics.jsonl")]


def assert_complete_series(lab: Lab, run_id: str, last: int = 1500) -> None:
    """One record per step from 0 to ``last``: no duplicate, no gap, strictly increasing."""
    steps = steps_of(lab, run_id)
    assert steps == list(range(0, last + 1)), (len(steps), steps[:3], steps[-3:])


def assert_lab_readable(root: Path) -> None:
    """Every JSON file of the lab parses; every stream reads; no temp file is left."""
    json.loads((root / "lablog.json").read_bytes())
    for status in root.glob("runs/*/status.json"):
        json.loads(status.read_bytes())
    for stream in root.glob("runs/*/metrics.jsonl"):
        steps = [r["step"] for r in read_records(stream)]
        assert all(b > a for a, b in zip(steps, steps[1:], strict=False)), stream
    leftovers = [p for p in root.rglob("*.tmp")]
    assert not leftovers, leftovers


def kill_run(lab: Lab, run_id: str) -> int:
    """SIGKILL the run's process (a crash: no handler runs) and wait until it is gone."""
    pid = live.read_status(lab, run_id).pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not processes.pid_alive(pid), f"pid {pid} to die")
    return pid


def kill_if_running(lab: Lab) -> None:
    """Clean-up: no run process of this lab outlives its test."""
    for record in lab.list_runs() if lab.exists else []:
        status = live.read_status(lab, record.id)
        if status.pid and processes.pid_alive(status.pid, status.pid_started):
            os.kill(status.pid, signal.SIGKILL)


# --- a TUI on a pseudo-terminal --------------------------------------------------------------


class Terminal:
    """grokterm's TUI in a child process on a pseudo-terminal, read through a VT emulator.

    The child is a session leader whose controlling terminal is the pty, as in an SSH
    login: closing the master end hangs the terminal up (SIGHUP).
    """

    def __init__(
        self,
        lab: Path,
        env: dict[str, str],
        *args: str,
        cols: int = 120,
        rows: int = 40,
    ):
        """``grokterm --lab LAB ARGS...``; no ARGS opens the TUI."""
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        argv = [sys.executable, "-m", "grokterm", "--lab", str(lab), *args]
        pid, fd = pty.fork()
        if pid == 0:  # the child: size the terminal, then become grokterm
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(sys.executable, argv, env)
        self.pid, self.fd = pid, fd
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.stream.feed(data)

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.screen.display)

    def wait_for_text(self, text: str, deadline: float = 60.0) -> None:
        try:
            wait_for(lambda: text in self.text(), f"'{text}' on the screen", deadline)
        except AssertionError:
            raise AssertionError(f"'{text}' never appeared; the screen:\n{self.text()}") from None

    def press(self, *keys: str) -> None:
        for key in keys:
            os.write(self.fd, key.encode())
            time.sleep(0.15)

    def alive(self) -> bool:
        return os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def hang_up(self) -> None:
        """Close the terminal, as a dropped SSH connection does."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def wait_exit(self, deadline: float = DEADLINE) -> int:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return status
            time.sleep(0.1)
        raise AssertionError("the TUI did not exit")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.hang_up()


CTRL_L = "\x0c"
