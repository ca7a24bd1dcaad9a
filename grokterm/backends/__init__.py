"""Where run processes execute. The launcher is the one door to them: above it nothing
knows which backend runs a run. The local process is the first; batched GPU cells and Ray
Jobs are meant to stand beside it (DESIGN §11)."""

from __future__ import annotations

from typing import Protocol

from grokterm.backends.local import LocalProcess
from grokterm.lab import Lab
from grokterm.lab.records import RunRecord, StatusFile


class Backend(Protocol):
    def start(
        self, lab: Lab, run_id: str, resume: bool = False, threads: int | None = None
    ) -> None:
        """Start the run's worker so that it outlives the caller, and record in the lab log
        how to reach it; ``threads`` caps its CPU threads (a sweep's share of the cores).
        Raises OSError when it cannot start."""

    def stop(self, run: RunRecord, status: StatusFile) -> None:
        """Ask the run's live worker to checkpoint and end as stopped."""

    def is_alive(self, run: RunRecord, status: StatusFile) -> bool | None:
        """Does the run's worker live? None when this backend cannot tell: not started
        yet, or running where it cannot look (another host sharing the lab)."""


LOCAL: Backend = LocalProcess()


def backend_for(run: RunRecord) -> Backend:
    """The backend that runs ``run``: the local process, the only one so far."""
    return LOCAL
