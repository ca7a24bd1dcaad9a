"""The grokterm app: a thin shell that owns the screens and the actions they share.

It launches, stops and resumes runs only through the launcher, and reads and writes the lab
only through the lab-log module. Torch is never imported here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from grokterm import launcher, live
from grokterm.errors import GrokError
from grokterm.lab import Lab, LabError
from grokterm.lab.records import ACTIVE
from grokterm.lab.store import NOTE_MAX_CHARS
from grokterm.tui import messages
from grokterm.tui.screens.base import GrokScreen
from grokterm.tui.screens.dialogs import Confirm, HelpScreen, Prompt
from grokterm.tui.screens.monitor import MonitorScreen
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.state import LabState

REFRESH_SECONDS = 1.0  # the one poller of the lab: run views, events, notes, watched streams
REPEAT_AFTER_SECONDS = 30.0
# worker name -> what its failure message starts with
FAILED = {"export": "Export failed: ", "sweep-export": "Sweep export failed: "}


def describe_error(error: BaseException | None) -> str:
    if isinstance(error, GrokError):  # already one line meant for the user
        return str(error)
    return f"{type(error).__name__}: {error}"


class GrokApp(App):
    """grokterm: a terminal lab notebook for grokking research."""

    CSS_PATH = "app.tcss"
    TITLE = "grokterm"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, id="quit-anywhere")]

    def __init__(self, lab: Lab, export_dir: Path | None = None):
        super().__init__()
        self.state = LabState(lab)
        self.export_dir = export_dir or Path.cwd()
        self.last_problem: tuple[str, float] | None = None

    @property
    def lab(self) -> Lab:
        return self.state.lab

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.state))
        self.refresh_lab()
        self.set_interval(REFRESH_SECONDS, self.refresh_lab)

    # --- the lab, read by one poller -----------------------------------------------------------

    @work(thread=True, exclusive=True, group="lab-refresh", exit_on_error=False, name="refresh")
    def refresh_lab(self) -> None:
        try:
            changed = self.state.refresh()
        except (LabError, OSError) as exc:
            self.call_from_thread(self.tell_screens, messages.LabProblem(describe_error(exc)))
            raise
        if changed:
            self.call_from_thread(self.publish_changes)

    def on_refresh_lab(self, _: messages.RefreshLab) -> None:
        self.refresh_lab()

    def publish_changes(self) -> None:
        change = self.state.take_changes()  # all changes so far: none is lost or applied twice
        if change:
            with self.batch_update():
                self.tell_screens(messages.LabChanged(change))

    def tell_screens(self, message: messages.LabChanged | messages.LabProblem) -> None:
        """Every screen in the stack hears it: one below the top is up to date when shown."""
        for screen in self.screen_stack:
            if isinstance(screen, GrokScreen):
                screen.post_message(message)

    # --- one error path --------------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed background read or write becomes a notification, never a traceback."""
        if event.state == WorkerState.ERROR:
            prefix = FAILED.get(event.worker.name, "")
            self.report_problem(prefix + describe_error(event.worker.error))

    def report_problem(self, message: str) -> None:
        """Notify once: a refresh that fails every second (say, on a corrupt lab log) must
        not bury the screen in copies of the same message."""
        now = time.monotonic()
        last = self.last_problem
        if last and last[0] == message and now - last[1] < REPEAT_AFTER_SECONDS:
            return
        self.last_problem = (message, now)
        self.notify(message, severity="error", markup=False, timeout=10)

    # --- navigation ----------------------------------------------------------------------

    def on_open_monitor(self, message: messages.OpenMonitor) -> None:
        # A monitor opened from the launch form (or another monitor) replaces that screen.
        monitor = MonitorScreen(self.state, message.run_id)
        if isinstance(self.screen, MonitorScreen) or getattr(self.screen, "replaced_by_monitor", 0):
            self.switch_screen(monitor)
        else:
            self.push_screen(monitor)

    def on_open_launch(self, message: messages.OpenLaunch) -> None:
        from grokterm.tui.screens.launch import LaunchScreen

        self.push_screen(LaunchScreen(self.lab, message.preset, message.run_id))

    def on_open_compare(self, message: messages.OpenCompare) -> None:
        from grokterm.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(self.state, message.run_ids))

    def on_open_lab_log(self, _: messages.OpenLabLog) -> None:
        from grokterm.tui.screens.lablog import LabLogScreen

        self.push_screen(LabLogScreen(self.state))

    def on_open_sweeps(self, _: messages.OpenSweeps) -> None:
        from grokterm.tui.screens.sweeps import SweepsScreen

        self.push_screen(SweepsScreen(self.state))

    def on_open_sweep(self, message: messages.OpenSweep) -> None:
        from grokterm.tui.screens.sweeps import SweepScreen

        self.push_screen(SweepScreen(self.state, message.sweep_id))

    def on_show_help(self, message: messages.ShowHelp) -> None:
        self.push_screen(HelpScreen(message.screen))

    # --- shared actions --------------------------------------------------------------------

    def on_add_note(self, message: messages.AddNote) -> None:
        run_id, step = message.run_id, message.step
        if run_id is None:
            title = "Lab note (on the lab, not on a run)"
        else:
            title = f"Note on {run_id}" + (f" at step {step}" if step is not None else "")

        def save(text: str | None) -> None:
            if text:
                self.write_note(run_id, text, step)

        self.push_screen(Prompt(title, max_length=NOTE_MAX_CHARS), save)

    @work(thread=True, exit_on_error=False, group="lab-write", name="note")
    def write_note(self, run_id: str | None, text: str, step: int | None) -> None:
        self.lab.add_note(text, run_id=run_id, step=step)
        added = f"Note added to {run_id}" if run_id else "Lab note added"
        self.call_from_thread(self.notify, added)
        self.call_from_thread(self.refresh_lab)

    def on_stop_run(self, message: messages.StopRun) -> None:
        run_id = message.run_id
        view = self.state.view(run_id)
        status = view.status if view is not None else "not in the lab"
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

    def on_resume_run(self, message: messages.ResumeRun) -> None:
        self.resume_run(message.run_id)

    @work(thread=True, exit_on_error=False, group="lab-write", name="resume")
    def resume_run(self, run_id: str) -> None:
        """Off the UI thread: a run that has just ended is given a moment to exit first."""
        restart = launcher.resume(self.lab, run_id)
        if restart:
            message = f"Restarting {run_id} from step 0: it has no checkpoint"
        else:
            message = f"Resuming {run_id} from its last checkpoint"
        self.call_from_thread(self.notify, message)

    def on_export_runs(self, message: messages.ExportRuns) -> None:
        run_ids = message.run_ids
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{run_ids[0]}.md" if len(run_ids) == 1 else f"grokterm-export-{stamp}.md"
        default = str(self.export_dir / name)

        def chosen(path: str | None) -> None:
            if path:
                self.write_export(run_ids, Path(path).expanduser())

        self.push_screen(Prompt(f"Export {len(run_ids)} run(s) to Markdown file", default), chosen)

    @work(thread=True, exit_on_error=False, group="export", name="export")
    def write_export(self, run_ids: list[str], target: Path) -> None:
        from grokterm.lab.export import export_runs, files_folder

        written = export_runs(self.lab, live.settled_views(self.lab, run_ids), target)
        charts = f"{len(written) - 1} chart(s) in {files_folder(written[0]).name}/"
        message = f"Exported to {written[0]} with {charts}"
        self.call_from_thread(self.notify, message)

    def on_export_sweep(self, message: messages.ExportSweep) -> None:
        sweep_id = message.sweep_id
        default = str(self.export_dir / f"{sweep_id}.md")

        def chosen(path: str | None) -> None:
            if path:
                self.write_sweep_export(sweep_id, Path(path).expanduser())

        self.push_screen(Prompt(f"Export {sweep_id} to Markdown file", default), chosen)

    @work(thread=True, exit_on_error=False, group="export", name="sweep-export")
    def write_sweep_export(self, sweep_id: str, target: Path) -> None:
        try:
            from grokterm.sweep.export import export_sweep
        except ImportError:
            self.call_from_thread(
                self.report_problem, "Sweep export is not in this version of grokterm"
            )
            return
        written = export_sweep(self.lab, sweep_id, target)
        self.call_from_thread(self.notify, f"Exported {sweep_id} to {written}")

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
