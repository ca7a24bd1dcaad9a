"""The launch screen and its generated config form, driven by keys through Textual's Pilot."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pilotkit import wait_for, workers_done
from pydantic import ValidationError
from textual import events
from textual.app import App
from textual.keys import _character_to_key
from textual.widgets import Input, Select, Static, Switch

from grokterm import launcher
from grokterm.config import Detector, Experiment
from grokterm.lab import Lab
from grokterm.presets import list_presets, load_experiment
from grokterm.tui.app import GrokApp
from grokterm.tui.messages import OpenMonitor
from grokterm.tui.screens.dialogs import Confirm
from grokterm.tui.screens.launch import (
    ConfirmOverwrite,
    LaunchScreen,
    SavePresetDialog,
    check_preset_name,
)
from grokterm.tui.screens.runs import RunsScreen
from grokterm.tui.widgets.config_form import ConfigForm, FormField, FormSection

REPO_PRESETS = Path(__file__).resolve().parent.parent / "experiments"


@pytest.fixture(autouse=True)
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of experiments/, so saving a preset never touches the checkout."""
    folder = tmp_path / "presets"
    shutil.copytree(REPO_PRESETS, folder)
    monkeypatch.setenv("GROKTERM_PRESETS", str(folder))
    return folder


class LaunchApp(App):
    """Just the launch screen; records the monitors it is asked to open."""

    def __init__(self, lab: Lab, preset: str | None = None) -> None:
        super().__init__()
        self.animation_level = "none"  # scrolling to a focused field is instant: fast tests
        self.lab = lab
        self.preset = preset
        self.opened: list[str] = []
        self.notes: list[tuple[str, str]] = []

    def on_mount(self) -> None:
        self.push_screen(LaunchScreen(self.lab, self.preset))

    def on_open_monitor(self, message: OpenMonitor) -> None:
        self.opened.append(message.run_id)

    def notify(self, message: str, **kwargs: Any) -> None:
        self.notes.append((kwargs.get("severity", "information"), message))
        super().notify(message, **kwargs)


def pydantic_message(data: dict[str, Any]) -> str:
    """pydantic's own message for the first error of this config."""
    with pytest.raises(ValidationError) as info:
        Experiment.model_validate(data)
    return info.value.errors()[0]["msg"].removeprefix("Value error, ")


def preset_data(name: str = "modadd-mlp") -> dict[str, Any]:
    return load_experiment(name)[1].model_dump(mode="json")


def with_value(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return data


def leaf_paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in data.items():
        if isinstance(value, dict):
            paths += leaf_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


def form_of(app: App) -> ConfigForm:
    return app.screen.query_one(ConfigForm)


def field(app: App, dotted: str) -> FormField:
    return form_of(app).field(dotted)


def form_settled(app: App) -> bool:
    screen = app.screen
    if not isinstance(screen, LaunchScreen):
        return True
    form = screen.form
    return form.settled and screen.status_serial == form.serial


async def settle(pilot) -> None:
    """Wait until the form and its status line have taken in every change.

    pilot.pause() returns once the widgets have handled what was queued when it was called,
    but a change cascades (Changed, a section rebuilt, its new fields mounted, validation,
    the status line) and on a busy machine the pause can return midway."""
    await pilot.pause()
    await wait_for(pilot, lambda: form_settled(pilot.app), "the form to take in every change")


async def type_into(pilot, dotted: str, text: str) -> None:
    """Focus a field's Input, clear it with keys, and type text, key by key."""
    control = field(pilot.app, dotted).control
    assert isinstance(control, Input)
    control.focus()
    await settle(pilot)
    await pilot.press("end", "ctrl+u")  # delete everything left of the cursor
    await pilot.press(*text)
    await settle(pilot)
    assert control.value == text or control.type != "text", (control.value, text)


def key_event(key: str) -> events.Key:
    if len(key) == 1:
        return events.Key(key if key.isalnum() else _character_to_key(key), key)
    return events.Key(key, None)


async def burst(pilot, *keys: str) -> None:
    """Keys as a terminal delivers a burst (key repeat, a fast typist, tmux send-keys): all
    posted at once, none waiting for the one before (pilot.press waits between keys)."""
    for key in keys:
        pilot.app.post_message(key_event(key))
    await settle(pilot)


async def focus_field(pilot, dotted: str) -> Input:
    control = field(pilot.app, dotted).control
    assert isinstance(control, Input)
    control.focus()
    await settle(pilot)
    return control


async def set_text(pilot, dotted: str, text: str) -> None:
    """Set an Input's text directly (posts the same Input.Changed as typing does)."""
    control = field(pilot.app, dotted).control
    assert isinstance(control, Input)
    control.value = text
    await settle(pilot)


async def pick(pilot, select: Select, downs: int) -> None:
    """Open a Select with enter, move down ``downs`` options, choose with enter: keys only.
    Each step waits for the one before, or a key meant for the menu reaches the Select."""
    select.focus()
    await settle(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: select.expanded and select.has_focus_within, "the menu")
    await pilot.press(*["down"] * downs, "enter")
    await wait_for(pilot, lambda: not select.expanded, "the menu to close")
    await settle(pilot)


async def on_screen(pilot, screen_type: type) -> None:
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, screen_type) and pilot.app.screen.is_mounted,
        screen_type.__name__,
    )
    await pilot.pause()


async def open_save_dialog(pilot) -> None:
    await pilot.press("ctrl+s")
    await on_screen(pilot, SavePresetDialog)


async def back_on_the_form(pilot) -> None:
    await on_screen(pilot, LaunchScreen)
    await settle(pilot)


def status_text(app: App) -> str:
    return str(app.screen.query_one("#launch-status", Static).content)


async def test_form_shows_the_preset_fields(tmp_path: Path) -> None:
    app = LaunchApp(Lab(tmp_path / "lab"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        assert screen.query_one("#launch-preset", Select).value == "modadd-mlp"
        sections = {section.border_title for section in screen.query(FormSection)}
        assert {"experiment", "task", "model", "optim", "schedule", "probes", "detector"} <= (
            sections
        )
        # Every field of the model has a widget of the right kind (checked against the
        # model, not a hand-written list).
        assert screen.query_one("#f-task-p", Input).value == "97"
        assert screen.query_one("#f-task-p", Input).type == "integer"
        assert screen.query_one("#f-optim-lr", Input).type == "number"
        assert screen.query_one("#f-task-kind", Select).value == "modular"
        assert screen.query_one("#f-model-kind", Select).value == "mlp"
        assert screen.query_one("#f-model-hidden", Input).value == "[256]"
        assert screen.query_one("#f-optim-betas", Input).value == "[0.9, 0.98]"
        assert screen.query_one("#f-tags", Input).value == "demo"
        assert screen.query_one("#f-probes-weight_norm", Switch).value is True
        for path in leaf_paths(load_experiment("modadd-mlp")[1].model_dump()):
            assert screen.query("#f-" + "-".join(path)), f"{'.'.join(path)} has no widget"
        # Descriptions are shown as help text.
        help_texts = [str(s.content) for s in field(app, "task.p").query(".field-help")]
        assert any("modulus" in text for text in help_texts)
        # The form reads back exactly the preset.
        form = form_of(app)
        assert Experiment.model_validate(form.values()) == load_experiment("modadd-mlp")[1]
        assert form.validate() == load_experiment("modadd-mlp")[1]
        assert "valid" in status_text(app) and "attention" not in status_text(app)


async def test_invalid_values_are_marked_and_launch_is_refused(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    app = LaunchApp(lab)
    messages: list[ConfigForm.Validity] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)

        await type_into(pilot, "optim.lr", "-1")
        lr = field(app, "optim.lr")
        expected = pydantic_message(with_value(preset_data(), "optim.lr", -1.0))
        assert lr.has_class("-invalid") and lr.control.has_class("-invalid")
        assert lr.error == expected == "Input should be greater than 0"
        assert expected in str(lr.query_one(".field-note", Static).content)
        assert "1 field needs attention" in status_text(app)

        await type_into(pilot, "task.train_fraction", "0")
        fraction = field(app, "task.train_fraction")
        assert fraction.error == pydantic_message(
            with_value(preset_data(), "task.train_fraction", 0.0)
        )
        assert field(app, "task.p").error is None

        # Letters cannot be typed into an integer field; what is left ('') is pydantic's
        # parse error, not an exception.
        await type_into(pilot, "schedule.steps", "abc")
        steps = field(app, "schedule.steps")
        assert steps.control.value == ""
        assert steps.error == pydantic_message(with_value(preset_data(), "schedule.steps", ""))
        assert "valid integer" in steps.error
        # Text the number filter lets through but float() refuses is a field error too.
        await set_text(pilot, "optim.weight_decay", "1e")
        assert "valid number" in field(app, "optim.weight_decay").error
        # A list item is named in the message.
        await set_text(pilot, "model.hidden", "[256, 0]")
        assert field(app, "model.hidden").error == (
            "item 2: Input should be greater than or equal to 1"
        )

        assert "5 fields need attention" in status_text(app)
        validity = [m for m in messages if isinstance(m, ConfigForm.Validity)]
        assert validity and validity[-1].valid is False and validity[-1].errors == 5

        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: app.notes, "the refusal")
        assert app.notes[-1] == ("error", "Not launched: 5 fields need attention")
        assert lab.list_runs() == []
        assert app.opened == []
        assert not (tmp_path / "lab" / "runs").exists()
        # The refusal focuses the first field that needs attention.
        assert app.focused is field(app, "task.train_fraction").control

        # Fixing every field clears every error.
        await type_into(pilot, "optim.lr", "0.001")
        assert field(app, "optim.lr").error is None
        assert not field(app, "optim.lr").has_class("-invalid")
        assert "4 fields need attention" in status_text(app)
        await set_text(pilot, "task.train_fraction", "0.4")
        await set_text(pilot, "schedule.steps", "6000")
        await set_text(pilot, "optim.weight_decay", "1")
        await set_text(pilot, "model.hidden", "256")
        form = form_of(app)
        assert form.errors() == {}
        assert not app.screen.query(".-invalid")
        assert "ready to launch" in status_text(app)
        assert form.validate() == load_experiment("modadd-mlp")[1]

        # A model-level rule (division needs a prime) lands on the section it belongs to.
        await type_into(pilot, "task.p", "10")
        app.screen.query_one("#f-task-op", Select).value = "/"
        await settle(pilot)
        task = app.screen.query_one("#section-task", FormSection)
        assert task.error == "p=10 is not prime; division mod p needs a prime modulus"
        assert task.has_class("-invalid") and task.has_class("-has-errors")
        assert "1 field needs attention: task" in status_text(app)
        await set_text(pilot, "task.p", "97")
        assert task.error is None and not task.has_class("-has-errors")


async def test_switching_model_kind_rebuilds_the_section(tmp_path: Path) -> None:
    app = LaunchApp(Lab(tmp_path / "lab"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        kind = screen.query_one("#f-model-kind", Select)
        # Keys only: open the menu, go down to 'transformer' (mlp, image_mlp, transformer).
        await pick(pilot, kind, downs=2)
        assert kind.value == "transformer"
        assert app.focused is kind
        assert not screen.query("#f-model-embed_dim")
        assert screen.query_one("#f-model-d_model", Input).value == "128"
        assert screen.query_one("#f-model-n_heads", Input).value == "4"
        assert screen.query_one("#f-model-layer_norm", Switch).value is False
        assert screen.query_one("#f-model-init", Select).value == "nanda"
        values = form_of(app).values()["model"]
        assert values["kind"] == "transformer" and "hidden" not in values
        experiment = form_of(app).validate()
        assert experiment is not None, form_of(app).errors()
        assert experiment.model.kind == "transformer"

        # A transformer rule spanning two fields shows on the model section.
        await type_into(pilot, "model.n_heads", "3")
        assert "not divisible" in (screen.query_one("#section-model", FormSection).error or "")

        # An image task needs an image model: the cross-section error names task.kind.
        task_kind = screen.query_one("#f-task-kind", Select)
        task_kind.value = "digits"
        await settle(pilot)
        assert screen.query_one("#f-task-n_train", Input).value == "1000"
        assert not screen.query("#f-task-p")
        await type_into(pilot, "model.n_heads", "4")
        assert "needs model.kind image_mlp" in (field(app, "task.kind").error or "")
        kind.value = "image_mlp"
        await settle(pilot)
        assert form_of(app).validate() is not None
        assert screen.query_one("#f-model-hidden", Input).value == "[200, 200]"


async def test_launch_right_after_a_kind_switch_launches_the_new_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ctrl+l pressed while the model section is still being rebuilt for a new kind must
    launch what the select shows, not the fields of the kind before."""
    monkeypatch.setattr(launcher, "start", lambda lab, run_id, resume=False: None)  # no process
    lab = Lab(tmp_path / "lab")
    app = LaunchApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.query_one("#f-model-kind", Select).value = "transformer"
        assert form_of(app).rebuilding  # the section has not caught up yet
        await screen.action_launch()
        await wait_for(pilot, lambda: app.opened, "the launch")
        assert lab.get_run(app.opened[0]).config["model"]["kind"] == "transformer"


async def test_a_fast_burst_of_keys_launches_exactly_what_was_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #12: characters overtook backspaces, so `1.0`, End, eight backspaces, `2.5`
    typed in one burst left the field empty (or `0`, `.0`: valid, and launched)."""
    monkeypatch.setattr(launcher, "start", lambda lab, run_id, resume=False: None)  # no process
    lab = Lab(tmp_path / "lab")
    app = LaunchApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        weight_decay = await focus_field(pilot, "optim.weight_decay")
        assert weight_decay.value == "1.0"
        await burst(pilot, "end", *["backspace"] * 8, *"2.5")
        assert weight_decay.value == "2.5"
        hidden = await focus_field(pilot, "model.hidden")
        await burst(pilot, "end", *["backspace"] * 7, *"[512]")
        assert hidden.value == "[512]"
        # Typing over a field's text (focus selects it), enter and tab to move on, and
        # ctrl+l, all in one burst.
        await focus_field(pilot, "optim.lr")
        keys = [*"0.002", "enter", *"0.5", "tab", "end", *["backspace"] * 20, *"[0.8, 0.9]"]
        await burst(pilot, *keys, "ctrl+l")
        await wait_for(pilot, lambda: app.opened, "the launch")
        config = lab.get_run(app.opened[0]).config
    expected = preset_data()
    expected["optim"].update(lr=0.002, weight_decay=0.5, betas=[0.8, 0.9])
    expected["model"]["hidden"] = [512]
    assert config == expected


async def test_escape_leaves_an_unedited_form_and_asks_before_discarding_edits(
    tmp_path: Path,
) -> None:
    app = LaunchApp(Lab(tmp_path / "lab"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_into(pilot, "optim.weight_decay", "1")  # the same value as "1.0"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LaunchScreen), "leaving")
        assert not isinstance(app.screen, Confirm)

        app.push_screen(LaunchScreen(app.lab))
        await on_screen(pilot, LaunchScreen)
        await settle(pilot)
        await type_into(pilot, "optim.weight_decay", "0.5")
        await pilot.press("escape")
        await on_screen(pilot, Confirm)
        assert "Discard" in app.screen.question
        await pilot.press("n")  # keep editing: the edit is still there
        await back_on_the_form(pilot)
        assert field(app, "optim.weight_decay").control.value == "0.5"
        await pilot.press("escape")
        await on_screen(pilot, Confirm)
        await pilot.press("y")
        await wait_for(
            pilot,
            lambda: not isinstance(app.screen, (LaunchScreen, Confirm)),
            "the form discarded",
        )


async def test_a_run_cloned_from_the_runs_screen_launches_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "start", lambda lab, run_id, resume=False: None)  # no process
    lab = Lab(tmp_path / "lab")
    _, nanda = load_experiment("nanda")
    source = nanda.model_copy(
        update={
            "name": "wd-sweep",
            "seed": 7,
            "optim": nanda.optim.model_copy(update={"weight_decay": 0.3, "lr": 0.002}),
        }
    )
    source_id = launcher.create_run(lab, source, "nanda")
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and app.screen.selected_id() == source_id,
            "the run in the table",
        )
        await pilot.press("N")
        await on_screen(pilot, LaunchScreen)
        await settle(pilot)
        screen = app.screen
        assert screen.cloned == source_id and source_id in screen.sub_title
        assert screen.query_one("#launch-preset", Select).value == "nanda"
        assert field(app, "name").control.value == "experiment"  # the model's default
        assert field(app, "seed").control.value == "7"
        assert field(app, "optim.weight_decay").control.value == "0.3"
        assert not screen.form.edited
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(lab.list_runs()) == 2, "the clone's run")
        clone = next(run for run in lab.list_runs() if run.id != source_id)
    assert clone.preset == "nanda"
    source_config = lab.get_run(source_id).config
    assert clone.config == {**source_config, "name": "experiment"}


async def test_save_as_preset(tmp_path: Path, presets: Path) -> None:
    app = LaunchApp(Lab(tmp_path / "lab"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_into(pilot, "optim.weight_decay", "0.1")
        await open_save_dialog(pilot)
        name_input = app.screen.query_one("#preset-name", Input)
        assert name_input.value == "modadd-mlp"
        # A bad name is refused in the dialog.
        await pilot.press("end", "ctrl+u", *"a b", "enter")
        error = app.screen.query_one("#preset-name-error", Static)
        await wait_for(pilot, lambda: "letters" in str(error.content), "the name's error")
        assert isinstance(app.screen, SavePresetDialog)
        await pilot.press("end", "ctrl+u", *"wd0.1", "enter")
        await back_on_the_form(pilot)
        path = presets / "wd0.1.toml"
        text = path.read_text()
        assert text.startswith("# Saved from the grokterm launch form on ")
        assert "# Started from the preset modadd-mlp." in text
        tomllib.loads(text)
        name, saved = load_experiment("wd0.1")
        assert name == "wd0.1" and saved.optim.weight_decay == 0.1
        assert saved.model_dump() == {
            **load_experiment("modadd-mlp")[1].model_dump(),
            "optim": {**load_experiment("modadd-mlp")[1].optim.model_dump(), "weight_decay": 0.1},
        }
        assert app.screen.query_one("#launch-preset", Select).value == "wd0.1"
        assert app.screen.preset_name == "wd0.1"
        await settle(pilot)
        assert form_of(app).validate() == saved  # the form was not reloaded or changed

        # Saving over an existing preset asks first; 'n' keeps the file.
        await type_into(pilot, "optim.weight_decay", "0.2")
        await open_save_dialog(pilot)
        assert app.screen.query_one("#preset-name", Input).value == "wd0.1"
        await pilot.press("enter")
        await on_screen(pilot, ConfirmOverwrite)
        await pilot.press("n")
        await on_screen(pilot, SavePresetDialog)
        assert load_experiment("wd0.1")[1].optim.weight_decay == 0.1
        await pilot.press("enter")
        await on_screen(pilot, ConfirmOverwrite)
        await pilot.press("y")
        await back_on_the_form(pilot)
        assert load_experiment("wd0.1")[1].optim.weight_decay == 0.2

        # Escape cancels the dialog without writing anything.
        before = sorted(list_presets())
        await open_save_dialog(pilot)
        await pilot.press("escape")
        await back_on_the_form(pilot)
        assert sorted(list_presets()) == before

        # An invalid form is not saved at all.
        await type_into(pilot, "optim.lr", "-1")
        notes = len(app.notes)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(app.notes) > notes, "the refusal")
        assert app.notes[-1] == ("error", "Not saved: fix the fields marked in red first")
        assert isinstance(app.screen, LaunchScreen)
        assert sorted(list_presets()) == before
    assert not (REPO_PRESETS / "wd0.1.toml").exists()


async def test_choosing_a_preset_reloads_the_form(tmp_path: Path) -> None:
    app = LaunchApp(Lab(tmp_path / "lab"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        preset = app.screen.query_one("#launch-preset", Select)
        assert app.focused is preset
        preset.value = "nanda"
        await wait_for(pilot, lambda: len(app.screen.query("#f-model-n_heads")), "the nanda form")
        await settle(pilot)
        assert app.screen.query_one("#f-model-kind", Select).value == "transformer"
        assert app.screen.query_one("#f-task-p", Input).value == "113"
        assert form_of(app).validate() == load_experiment("nanda")[1]


async def test_launch_a_short_real_run(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    app = LaunchApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await type_into(pilot, "task.p", "23")
        await type_into(pilot, "schedule.steps", "50")
        await type_into(pilot, "schedule.eval_every", "10")
        await type_into(pilot, "schedule.checkpoint_every", "0")
        await type_into(pilot, "model.hidden", "[32]")
        await type_into(pilot, "model.embed_dim", "16")
        app.screen.query_one("#f-device", Select).value = "cpu"
        await settle(pilot)
        assert "ready to launch" in status_text(app)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: app.opened, "the launched run's monitor")
        assert len(app.opened) == 1
        run_id = app.opened[0]
        assert ("information", f"Launched run {run_id}") in app.notes
        record = lab.get_run(run_id)
        assert record.preset == "modadd-mlp"
        assert record.config["schedule"]["steps"] == 50
        assert record.config["task"]["p"] == 23
    view = launcher.wait_until_done(lab, run_id, timeout=300)
    log = launcher.run_log(lab, run_id)
    assert view.status == "finished", log.read_text() if log.exists() else view
    assert lab.get_run(run_id).step == 50


async def test_launch_errors_become_notifications(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the lab should be")
    app = LaunchApp(Lab(blocker / "lab"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: not app.screen.launching and app.notes, "the failure")
        await workers_done(app)
        assert app.opened == []
        assert isinstance(app.screen, LaunchScreen) and not app.screen.launching
        errors = [text for severity, text in app.notes if severity == "error"]
        assert errors and errors[-1].startswith("Run not launched: ")
        await pilot.pause(0.2)  # the toast renders (markup off: '[Errno 20]' is kept as is)


async def test_small_terminal_keyboard_only(tmp_path: Path) -> None:
    app = LaunchApp(Lab(tmp_path / "lab"), preset="nanda")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.query_one("#launch-preset", Select).value == "nanda"
        assert form_of(app).has_class("-narrow")
        status = screen.query_one("#launch-status", Static)
        assert status.region.bottom <= 23 and status.region.height == 1
        assert "ready to launch" in status_text(app)
        # Tab walks the fields in order; the focused field shows its help line below it
        # (only that one does, at this width).
        await pilot.press("tab")
        assert app.focused is field(app, "name").control
        await pilot.press("tab", "tab")
        seed = field(app, "seed")
        assert app.focused is seed.control
        notes = [w for w in screen.query(".field-note") if w.display]
        assert notes == [seed.query_one(".field-note")]
        assert "≥ 0" in str(notes[0].content)
        # Shown at the next layout, which may come a frame after the focus moved.
        await wait_for(pilot, lambda: notes[0].region.height >= 1, "the seed's help line")
        # Shift+tab from the first field wraps to the last one and scrolls it into view.
        await pilot.press("shift+tab", "shift+tab", "shift+tab", "shift+tab")
        await settle(pilot)
        last_name = f"detector.{list(Detector.model_fields)[-1]}"  # the form's last field
        last = field(app, last_name).control
        assert app.focused is last
        scroll = screen.query_one("#launch-form")
        await wait_for(
            pilot,
            lambda: scroll.scroll_y > 0 and scroll.region.contains_region(last.region),
            "the last field scrolled into view",
        )
        # An error shows under its field at this width too.
        await pilot.press("end", "ctrl+u", "minus", "1")
        await settle(pilot)
        assert "greater than" in (field(app, last_name).error or "")
        assert "1 field needs attention" in status_text(app)
        await pilot.press("escape")  # the form has an edit: discard it
        await on_screen(pilot, Confirm)
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, (LaunchScreen, Confirm)), "out")


def test_preset_names() -> None:
    assert check_preset_name("wd0.1") is None
    assert check_preset_name("") is not None
    assert check_preset_name("has space") is not None
    assert check_preset_name("../escape") is not None
    assert check_preset_name(".hidden") is not None


async def test_hostile_values_in_the_form_are_field_errors_not_crashes(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    app = LaunchApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await set_text(pilot, "model.hidden", "[" * 5000 + "]" * 5000)  # deeper than tomllib
        assert field(app, "model.hidden").error
        await set_text(pilot, "task.p", "9" * 5000)  # more digits than int() takes
        assert field(app, "task.p").error
        await set_text(pilot, "tags", "[" * 5000)
        await set_text(pilot, "name", "x" * 10_000)
        await settle(pilot)
        assert "need attention" in status_text(app)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: app.notes, "the refusal")
        assert app.notes[-1][0] == "error" and "Not launched" in app.notes[-1][1]
        assert app.opened == [] and not lab.exists
