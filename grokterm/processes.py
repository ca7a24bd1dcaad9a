"""Is a process alive, and when did it start (Linux /proc): torch-free OS queries shared by
the local backend, which watches run processes, and the worker, which records its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _proc_stat(pid: int) -> list[str]:
    """Fields 3... of /proc/PID/stat (Linux); empty where there is no such file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2 :].split()  # the name in parentheses may hold spaces


def process_start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux); None where unknown."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19])  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int | None, started: int | None = None) -> bool:
    """Is the process running? With ``started`` (its start ticks), a new process that was
    given a dead run's pid does not count."""
    if not pid:
        return False
    try:  # a run we started and that died is a zombie child until reaped: reap it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields[:1] == ["Z"]:  # dead, waiting for a parent (or init) to reap it
        return False
    if started is not None and len(fields) > 19:
        return fields[19] == str(started)  # field 22 of proc(5): its start time
    return True


def spawn_detached(command: list[str], log_path: Path) -> int:
    """Start ``command`` in a session of its own (it outlives the terminal, the TUI and the
    SSH link), its output appended to ``log_path``; returns its pid. OSError if it cannot."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return process.pid
