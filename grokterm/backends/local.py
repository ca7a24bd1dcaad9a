"""The local-process backend: each run is a worker process of this machine, started in a
session of its own so that it outlives the terminal, the TUI and the SSH link."""

from __future__ import annotations

import os
import signal
import socket
import sys

from grokterm.lab import Lab
from grokterm.lab.records import RunRecord, StatusFile
from grokterm.processes import pid_alive, spawn_detached


def worker_command(
    lab: Lab, run_id: str, resume: bool = False, threads: int | None = None
) -> list[str]:
    command = [sys.executable, "-m", "grokterm.engine.worker", "--lab", str(lab.root), run_id]
    if threads:
        command += ["--threads", str(threads)]
    return command + ["--resume"] if resume else command


class LocalProcess:
    def start(
        self, lab: Lab, run_id: str, resume: bool = False, threads: int | None = None
    ) -> None:
        """Start the worker in its own session; its stdout and stderr go to run.log."""
        command = worker_command(lab, run_id, resume, threads)
        pid = spawn_detached(command, lab.run_dir(run_id) / "run.log")
        lab.update_run(run_id, pid=pid, host=socket.gethostname())

    def stop(self, run: RunRecord, status: StatusFile) -> None:
        pid = status.pid or run.pid
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a suspended run (ctrl+z) would hold the SIGTERM for ever

    def is_alive(self, run: RunRecord, status: StatusFile) -> bool | None:
        if status.written:
            if status.host not in (None, socket.gethostname()):
                return None  # a process of another host cannot be checked from here
            return pid_alive(status.pid, status.pid_started)
        return None if run.pid is None else pid_alive(run.pid)
