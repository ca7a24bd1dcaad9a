"""The grokterm app: a thin shell that owns the screens and the actions they share.

It launches, stops and resumes runs only through the launcher, and reads and writes the lab
only through the lab-log module. Torch is never imported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from grokterm import launcher, live
from grokterm.lab import Lab, LabError
from grokterm.lab.records import ACTIVE
from grokterm.lab.store import NOTE_MAX_CHARS
from grokterm.tui.screens.dialogs import Confirm, HelpScreen, Prompt
from grokterm.tui.screens.monitor import MonitorScreen
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.state import LabState


class GrokApp(App):
    """grokterm: a terminal lab notebook for grokking research."""

    CSS_PATH = "app.tcss"
    TITLE = "grokterm"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False)]

    def __init__(self, lab: Lab, export_dir: Path | None = None):
        super().__init__()
        self.state = LabState(lab)
        self.export_dir = export_dir or Path.cwd()

    @property
    def lab(self) -> Lab:
        return self.state.lab

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.state))

    # --- navigation ----------------------------------------------------------------------

    def open_monitor(self, run_id: str) -> None:
        # A monitor opened from the launch form (or another monitor) replaces that screen.
        if isinstance(self.screen, MonitorScreen) or getattr(self.screen, "replaced_by_monitor", 0):
            self.switch_screen(MonitorScreen(self.state, run_id))
        else:
            self.push_screen(MonitorScreen(self.state, run_id))

    def open_launch(self, preset: str | None = None) -> None:
        from grokterm.tui.screens.launch import LaunchScreen

        self.push_screen(LaunchScreen(self.lab, preset))

    def open_compare(self, run_ids: list[str]) -> None:
        from grokterm.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(self.state, run_ids))

    def open_lab_log(self) -> None:
        from grokterm.tui.screens.lablog import LabLogScreen

        self.push_screen(LabLogScreen(self.state))

    def show_help(self, screen: Screen) -> None:
        self.push_screen(HelpScreen(screen))

    # --- shared actions --------------------------------------------------------------------

    def add_note(self, run_id: str, step: int | None) -> None:
        where = f" at step {step}" if step is not None else ""

        def save(text: str | None) -> None:
            if text:
                self.write_note(run_id, text, step)

        self.push_screen(Prompt(f"Note on {run_id}{where}", max_length=NOTE_MAX_CHARS), save)

    @work(thread=True, exit_on_error=False, group="lab-write")
    def write_note(self, run_id: str, text: str, step: int | None) -> None:
        try:
            self.lab.add_note(text, run_id=run_id, step=step)
        except (LabError, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.call_from_thread(self.notify, f"Note added to {run_id}")

    def stop_run(self, run_id: str) -> None:
        status = self.state.run(run_id).status
        if status not in ACTIVE:
            self.notify(f"{run_id} is not running (status {status})", severity="error")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                try:
                    launcher.stop(self.lab, run_id)
                except (LabError, OSError) as exc:
                    self.notify(str(exc), severity="error")
                else:
                    self.notify(f"Stopping {run_id}: it checkpoints, then ends as 'stopped'")

        self.push_screen(Confirm(f"Stop {run_id}? It saves a checkpoint first."), confirmed)

    @work(thread=True, exit_on_error=False, group="lab-write")
    def resume_run(self, run_id: str) -> None:
        """Off the UI thread: a run that has just ended is given a moment to exit first."""
        try:
            restart = launcher.resume(self.lab, run_id)
        except (LabError, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        if restart:
            message = f"Restarting {run_id} from step 0: it has no checkpoint"
        else:
            message = f"Resuming {run_id} from its last checkpoint"
        self.call_from_thread(self.notify, message)

    def export_runs(self, run_ids: list[str]) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{run_ids[0]}.md" if len(run_ids) == 1 else f"grokterm-export-{stamp}.md"
        default = str(self.export_dir / name)

        def chosen(path: str | None) -> None:
            if path:
                self.write_export(run_ids, Path(path).expanduser())

        self.push_screen(Prompt(f"Export {len(run_ids)} run(s) to Markdown file", default), chosen)

    @work(thread=True, exit_on_error=False, group="export")
    def write_export(self, run_ids: list[str], target: Path) -> None:
        from grokterm.lab.export import export_runs

        try:
            live.record_ended_runs(self.lab)  # a killed run is exported as crashed
            written = export_runs(self.lab, run_ids, target)
        except (LabError, OSError) as exc:
            self.call_from_thread(self.notify, f"Export failed: {exc}", severity="error")
            return
        message = f"Exported to {written[0]} with {len(written) - 1} chart(s)"
        self.call_from_thread(self.notify, message)

    # --- command palette: the current screen's actions -----------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                action = binding.action

                def run(action: str = action, target: Screen = screen) -> None:
                    self.call_later(target.run_action, action)

                yield SystemCommand(binding.description, f"key: {binding.key}", run)


def run_tui(lab: Lab) -> None:
    GrokApp(lab).run()
