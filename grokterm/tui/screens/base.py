"""What every grokterm screen shares."""

from __future__ import annotations

import itertools
import time

from textual.screen import Screen
from textual.worker import Worker, WorkerState

REPEAT_AFTER_SECONDS = 30.0


def describe_error(error: BaseException | None) -> str:
    from grokterm.errors import GrokError

    if isinstance(error, GrokError):  # already one line meant for the user
        return str(error)
    return f"{type(error).__name__}: {error}"


class Freshness:
    """Orders the results of overlapping refreshes. `exclusive` cannot stop a thread worker
    already reading, so an older read may finish after a newer one; only a result newer
    than the last one shown is applied."""

    def __init__(self) -> None:
        self._issued = itertools.count(1)
        self._shown = 0

    def ticket(self) -> int:
        """Taken by a refresh before it reads (any thread)."""
        return next(self._issued)

    def is_newest(self, ticket: int) -> bool:
        """Called on the UI thread with the result; True marks it as shown."""
        if ticket <= self._shown:
            return False
        self._shown = ticket
        return True


class GrokScreen(Screen):
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed background read or write becomes a notification, never a traceback."""
        if event.state == WorkerState.ERROR:
            self.report_problem(describe_error(event.worker.error))

    def report_problem(self, message: str) -> None:
        """Notify once: a refresh that fails every second (say, on a corrupt lab log) must
        not bury the screen in copies of the same message."""
        last = getattr(self.app, "_last_problem", None)
        now = time.monotonic()
        if last and last[0] == message and now - last[1] < REPEAT_AFTER_SECONDS:
            return
        self.app._last_problem = (message, now)
        self.notify(message, severity="error", markup=False, timeout=10)


SMOOTHING_LEVELS = (0.0, 0.6, 0.9, 0.97)


class ChartScreen(GrokScreen):
    """A screen of step charts: log/linear x, EMA strength, and back."""

    log_x = True
    smoothing_index = 0

    @property
    def smoothing(self) -> float:
        return SMOOTHING_LEVELS[self.smoothing_index]

    def update_status(self) -> None:
        raise NotImplementedError

    def update_charts(self) -> None:
        raise NotImplementedError

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_log(self) -> None:
        self.log_x = not self.log_x
        self.update_status()
        self.update_charts()

    def action_smoothing(self) -> None:
        self.smoothing_index = (self.smoothing_index + 1) % len(SMOOTHING_LEVELS)
        self.update_status()
        self.update_charts()
