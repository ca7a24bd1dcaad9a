"""Stop requests by signal. Torch-free, so handlers are in place before torch's slow import."""

from __future__ import annotations

import signal


class StopFlag:
    """Set by a signal handler; the training loop checks it once per step."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = reason


def install_stop_handlers(stop: StopFlag, hang_up_stops: bool = False) -> None:
    """SIGTERM and SIGINT ask the run to stop at the next step, with a final checkpoint.

    With ``hang_up_stops`` (a run in the foreground of a terminal), so does SIGHUP: a closed
    terminal ends the run cleanly instead of killing it mid-step.
    """

    def handle(signum, _frame):
        stop.request(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    if hang_up_stops:
        signal.signal(signal.SIGHUP, handle)
