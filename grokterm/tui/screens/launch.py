"""The launch form: pick a preset (or clone a run), edit it in a form generated from the
Experiment model, then launch it as a run process or save it as a new preset.

The run is created and started through the launcher in a thread worker (creating the run
takes the lab-log lock; starting it forks a process), so the UI never blocks. Every error
the user can act on (a bad config, a locked lab log, a failed fork) becomes a notification.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Header, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from grokterm import launcher, schema
from grokterm.config import Experiment
from grokterm.errors import GrokError
from grokterm.lab import Lab
from grokterm.presets import ConfigError, list_presets, load_experiment, save_preset
from grokterm.tui import bindings, messages
from grokterm.tui.screens.base import GrokFooter
from grokterm.tui.screens.dialogs import Confirm
from grokterm.tui.widgets.config_form import ConfigForm

DEFAULT_PRESET = "modadd-mlp"
PRESET_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
PRESET_NAME_MAX = 60


def check_preset_name(name: str) -> str | None:
    """Why ``name`` cannot name a preset file, or None when it can."""
    if not name:
        return "enter a name"
    if not PRESET_NAME.match(name):
        return "use only letters, digits, '.', '_' and '-'"
    if name.startswith("."):
        return "a preset name cannot start with '.'"
    if len(name) > PRESET_NAME_MAX:
        return f"at most {PRESET_NAME_MAX} characters"
    return None


class ConfirmOverwrite(ModalScreen[bool]):
    """Yes/no: replace an existing preset file."""

    DEFAULT_CSS = """
    ConfirmOverwrite {
        align: center middle;
    }
    ConfirmOverwrite > Vertical {
        width: 60;
        max-width: 90%;
        height: auto;
        padding: 1 2;
        border: thick $warning;
        background: $surface;
    }
    ConfirmOverwrite .confirm-help {
        color: $text-muted;
        margin-top: 1;
    }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Overwrite"),
        Binding("n,escape", "answer(False)", "Keep it"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.preset = name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Preset '{self.preset}' exists. Overwrite it?", markup=False)
            yield Label("y = overwrite, n / escape = keep it", classes="confirm-help")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class SavePresetDialog(ModalScreen[str | None]):
    """Ask for a preset name; an existing preset is only replaced after a confirmation."""

    DEFAULT_CSS = """
    SavePresetDialog {
        align: center middle;
    }
    SavePresetDialog > Vertical {
        width: 64;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $accent;
        background: $surface;
    }
    SavePresetDialog .save-title {
        text-style: bold;
        margin-bottom: 1;
    }
    SavePresetDialog .save-error {
        color: $text-error;
        height: auto;
    }
    SavePresetDialog .save-help {
        color: $text-muted;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggestion: str = "") -> None:
        super().__init__()
        self.suggestion = suggestion

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save the form as a preset", classes="save-title")
            yield Input(
                self.suggestion,
                placeholder="preset name, e.g. modadd-wd0.1",
                max_length=PRESET_NAME_MAX,
                id="preset-name",
            )
            yield Static("", classes="save-error", id="preset-name-error", markup=False)
            yield Label("enter = save, escape = cancel", classes="save-help")

    @on(Input.Changed, "#preset-name")
    def _check(self, event: Input.Changed) -> None:
        problem = check_preset_name(event.value.strip()) if event.value else None
        self.query_one("#preset-name-error", Static).update(problem or "")

    @on(Input.Submitted, "#preset-name")
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        problem = check_preset_name(name)
        if problem:
            self.query_one("#preset-name-error", Static).update(problem)
            return
        if name not in list_presets():
            self.dismiss(name)
            return

        def answered(overwrite: bool | None) -> None:
            if overwrite:
                self.dismiss(name)
            else:
                self.query_one("#preset-name-error", Static).update(
                    f"'{name}' exists: choose another name"
                )

        self.app.push_screen(ConfirmOverwrite(name), answered)

    def action_cancel(self) -> None:
        self.dismiss(None)


def clone_of(lab: Lab, run_id: str) -> tuple[str | None, Experiment]:
    """A run's preset and experiment, to launch again: its config with the name reset to
    the model's default (the seed is kept, so an unedited clone replays the run)."""
    record = lab.get_run(run_id)
    config = {**record.config, "name": Experiment.model_fields["name"].default}
    experiment, errors = schema.validate(Experiment, config)
    if experiment is None:
        raise ConfigError(schema.summary(errors, f"run {run_id}"))
    return record.preset, experiment


class LaunchScreen(Screen):
    """Launch an experiment: a preset or a run's config, edited in a form generated from the
    Experiment model."""

    DEFAULT_CSS = """
    LaunchScreen {
        layout: vertical;
    }
    LaunchScreen #launch-top {
        height: 1;
        padding: 0 1;
    }
    LaunchScreen #launch-preset-label {
        width: auto;
        padding-right: 1;
        text-style: bold;
    }
    LaunchScreen #launch-preset {
        width: 32;
    }
    LaunchScreen #launch-preset:focus > SelectCurrent {
        background-tint: $foreground 12%;
    }
    LaunchScreen #launch-hint {
        width: 1fr;
        padding-left: 2;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    LaunchScreen #launch-form {
        height: 1fr;
        padding: 0 1;
        margin-top: 1;
    }
    LaunchScreen #launch-status {
        height: 1;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    LaunchScreen #launch-status.-valid {
        color: $text-success;
    }
    LaunchScreen #launch-status.-invalid {
        color: $text-error;
        text-style: bold;
    }
    """

    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch", id="launch"),
        Binding("ctrl+r", "launch", show=False, id="launch-alias"),  # kept out of help, palette
        Binding("ctrl+s", "save_preset", "Save as preset", id="save-preset"),
        bindings.BACK,
        Binding("f1", "help", "Help", id="help"),  # not ?, which a form field may want
        bindings.QUIT_FROM_FORM,
    ]

    # GrokApp.on_open_monitor replaces (rather than covers) a screen that says this.
    replaced_by_monitor = True

    def __init__(self, lab: Lab, preset: str | None = None, run_id: str | None = None) -> None:
        super().__init__()
        self.lab = lab
        self.presets = list(list_presets())
        self.preset_name: str | None = None
        self.launching = False
        self.status_serial = 0  # the form validation the status line shows
        self._startup_error: str | None = None
        self.cloned: str | None = None  # the run whose config the form started from
        self._experiment = self._initial_experiment(preset, run_id)

    def _initial_experiment(self, preset: str | None, run_id: str | None) -> Experiment:
        if run_id is not None:
            try:
                preset_name, experiment = clone_of(self.lab, run_id)
            except GrokError as exc:
                self._startup_error = f"Run not cloned: {exc}"
            else:
                self.cloned = run_id
                self.preset_name = preset_name if preset_name in self.presets else None
                return experiment
        return self._preset_experiment(preset)

    def _preset_experiment(self, preset: str | None) -> Experiment:
        wanted = preset or (DEFAULT_PRESET if DEFAULT_PRESET in self.presets else None)
        wanted = wanted or (self.presets[0] if self.presets else None)
        if wanted is None:
            self._startup_error = "No presets found: the form starts from the defaults"
            return Experiment()
        try:
            name, experiment = load_experiment(wanted)
        except ConfigError as exc:
            self._startup_error = f"Preset not loaded: {exc}"
            return Experiment()
        self.preset_name = name
        return experiment

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="launch-top"):
            yield Label("preset", id="launch-preset-label")
            yield Select(
                [(name, name) for name in self.presets],
                value=self.preset_name if self.preset_name in self.presets else Select.NULL,
                allow_blank=self.preset_name not in self.presets,
                prompt="(none)",
                compact=True,
                id="launch-preset",
            )
            yield Static(
                "tab/shift+tab: move · enter: next field · ctrl+l: launch",
                id="launch-hint",
            )
        with VerticalScroll(id="launch-form") as scroll:
            scroll.can_focus = False  # not a tab stop: tabbing to a field scrolls to it
            yield ConfigForm(self._experiment, id="config-form")
        yield Static("checking…", id="launch-status", markup=False)
        yield GrokFooter()

    def on_mount(self) -> None:
        self.sub_title = f"clone of run {self.cloned}" if self.cloned else "launch an experiment"
        self.query_one("#launch-preset", Select).focus()
        if self._startup_error:
            self.notify(self._startup_error, severity="error", markup=False)

    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    # -- presets ----------------------------------------------------------------------

    @on(Select.Changed, "#launch-preset")
    async def _preset_chosen(self, event: Select.Changed) -> None:
        event.stop()  # not a form field
        name = event.value
        if name is Select.NULL or name == self.preset_name:
            return
        try:
            preset, experiment = load_experiment(str(name))
        except ConfigError as exc:
            self.notify(f"Preset not loaded: {exc}", severity="error", markup=False)
            self._show_preset(self.preset_name)
            return
        self.preset_name = preset
        await self.form.load(experiment)
        self.query_one("#launch-form", VerticalScroll).scroll_home(animate=False)

    def _show_preset(self, name: str | None) -> None:
        """Point the preset select at ``name`` without reloading the form."""
        select = self.query_one("#launch-preset", Select)
        with self.prevent(Select.Changed):
            select.set_options([(preset, preset) for preset in self.presets])
            if name in self.presets:
                select.value = name

    # -- validity ---------------------------------------------------------------------

    def on_config_form_validity(self, message: ConfigForm.Validity) -> None:
        self.status_serial = message.serial
        status = self.query_one("#launch-status", Static)
        status.set_class(message.valid, "-valid")
        status.set_class(not message.valid, "-invalid")
        if self.launching:
            return
        if message.valid:
            text = "✓ valid — ready to launch (ctrl+l)"
        else:
            count = message.errors
            where = ", ".join(path or "experiment" for path in message.form.errors())
            noun = "1 field needs" if count == 1 else f"{count} fields need"
            text = f"✗ {noun} attention: {where}"
        if str(status.content) != text:
            status.update(text)

    # -- actions ----------------------------------------------------------------------

    def action_back(self) -> None:
        if not self.form.edited:
            self.app.pop_screen()
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.app.pop_screen()

        self.app.push_screen(Confirm("Discard your edits to this form?"), answered)

    def action_help(self) -> None:
        self.post_message(messages.ShowHelp(self))

    async def action_launch(self) -> None:
        if self.launching:
            self.notify("A launch is already under way", severity="warning")
            return
        form = self.form
        self.launching = True  # a second ctrl+l while the form settles launches nothing
        rebuilt = await self._form_rebuilt(form)
        self.launching = False
        if not rebuilt:
            self.notify("Not launched: the form is still updating; try again", severity="error")
            return
        experiment = form.validate()
        if experiment is None:
            count = form.error_count
            noun = "1 field needs" if count == 1 else f"{count} fields need"
            self.notify(f"Not launched: {noun} attention", severity="error")
            form.focus_first_error()
            return
        self.launching = True
        self.query_one("#launch-status", Static).update(f"launching {experiment.name}…")
        self._launch(experiment, self.preset_name)

    async def _form_rebuilt(self, form: ConfigForm, patience: float = 5.0) -> bool:
        """A kind switched just before ctrl+l: launch what the screen shows, not the fields
        of the kind before (the rebuild runs in other tasks, so yield until it is done)."""
        deadline = time.monotonic() + patience
        while form.rebuilding:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    @work(thread=True, exit_on_error=False, group="launch", name="launch")
    def _launch(self, experiment: Experiment, preset: str | None) -> None:
        try:
            run_id = launcher.launch(self.lab, experiment, preset)
        except (GrokError, OSError) as exc:
            self.app.call_from_thread(self._launch_failed, f"Run not launched: {exc}")
            return
        self.app.call_from_thread(self._launched, run_id)

    def _launched(self, run_id: str) -> None:
        self.launching = False
        self.notify(f"Launched run {run_id}", markup=False)
        self.form.validate()  # restores the status line, should the screen stay
        self.post_message(messages.OpenMonitor(run_id))

    def _launch_failed(self, text: str) -> None:
        self.launching = False
        self.notify(text, severity="error", markup=False)
        self.form.validate()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        # Anything the worker did not catch (a bug, not a user error) still ends as a toast.
        if event.worker.name == "launch" and event.state == WorkerState.ERROR:
            self._launch_failed(f"Launch failed: {event.worker.error}")

    def action_save_preset(self) -> None:
        form = self.form
        experiment = form.validate()
        if experiment is None:
            self.notify("Not saved: fix the fields marked in red first", severity="error")
            form.focus_first_error()
            return

        def chosen(name: str | None) -> None:
            if name:
                self._save(experiment, name)

        suggestion = self.preset_name if self.preset_name else experiment.name
        self.app.push_screen(SavePresetDialog(suggestion or ""), chosen)

    def _save(self, experiment: Experiment, name: str) -> None:
        header = f"Saved from the grokterm launch form on {datetime.now():%Y-%m-%d %H:%M}"
        if self.preset_name and self.preset_name != name:
            header += f"\nStarted from the preset {self.preset_name}."
        try:
            path = save_preset(experiment, name, header)
        except (GrokError, OSError) as exc:
            self.notify(f"Preset not saved: {exc}", severity="error", markup=False)
            return
        self.presets = list(list_presets())
        self.preset_name = name
        self._show_preset(name)
        self.notify(f"Saved preset {name} ({path})", markup=False)
