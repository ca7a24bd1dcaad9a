"""What every grokterm screen shares."""

from __future__ import annotations

from textual.screen import Screen
from textual.worker import Worker, WorkerState


class GrokScreen(Screen):
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed background read or write becomes a notification, never a traceback."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", severity="error", markup=False)


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
