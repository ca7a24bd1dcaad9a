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
