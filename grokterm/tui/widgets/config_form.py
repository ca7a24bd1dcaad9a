"""A form generated from the pydantic Experiment model (DESIGN §1.5: config is data).

Nothing here lists the Experiment's fields by hand: the form walks the field specs of
``grokterm.schema``, which also turns text into values and back. Scalars become an ``Input``
(typed for numbers), a ``Literal`` a ``Select``, a ``bool`` a ``Switch``, a list or tuple an
``Input`` holding a TOML array (``[256, 256]``) or a comma list; a nested model becomes a
titled section, and a discriminated union (``task``, ``model``) a section with a ``kind``
select that rebuilds it with the new kind's defaults.

A pause in the typing (``VALIDATE_AFTER``) re-validates the whole form with pydantic, places
each error on its field (``schema.place``), shows pydantic's message under that field and posts
``ConfigForm.Validity``; validation reads the fields and never writes into them. Unparseable
text (``abc`` in a number field) is handed to pydantic as is, so it becomes that field's error,
never an exception.

Text fields are ``FormInput``s: keys act in the order they were typed, however fast (see there).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from grokterm import schema
from grokterm.config import Experiment
from grokterm.schema import (
    FieldSpec,
    Path,
    Spec,
    UnionSpec,
    format_value,
    model_defaults,
    model_doc,
    parse_text,
    plain,
)

NARROW_BELOW = 100  # form width in cells under which help text shows only for the focused field
VALIDATE_AFTER = 0.15  # seconds without a change before the form re-validates
FOCUS_KEYS = {"tab": "focus_next", "shift+tab": "focus_previous"}  # the Screen's bindings


def _on_off(value: Any) -> str:
    return "on" if value else "off"


def control_id(path: Path) -> str:
    """The DOM id of a field's control: ``f-optim-lr`` for optim.lr."""
    return "f-" + "-".join(path)


# -- widgets ------------------------------------------------------------------------------


class FormInput(Input):
    """An Input that takes keys in the order they were typed, however fast they come.

    Textual inserts a typed character as soon as it reaches the Input, but an editing key
    (backspace, end, ctrl+u) first travels up the DOM to the App, which then runs the Input's
    binding for it. When keys queue up (key repeat, a fast typist, a busy machine) the
    characters overtake the backspaces: End, eight backspaces and `2.5` left `1.0` empty
    (Textualize/textual#6605). So this Input runs its own bindings, and the keys that move the
    focus (tab, shift+tab, enter), as they arrive; a key that was already on its way here when
    an earlier one moved the focus goes on to the field focused now.
    """

    # Input sets its virtual size (the width of its text) on every change, and Widget declares
    # that size as layout-changing, so every key re-laid-out the whole screen: 30 ms for this
    # form on an idle machine, hundreds on a busy one. A form field's box never depends on its
    # text (fixed width, one line), so repainting the field is enough.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    async def _on_key(self, event: events.Key) -> None:
        focused = self.screen.focused
        if focused is not self and focused is not None:
            event.stop()
            event.prevent_default()
            focused._forward_event(events.Key(event.key, event.character))
            return
        if not event.is_printable and await self._run_key_inline(event.key):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    async def _run_key_inline(self, key: str) -> bool:
        if key in FOCUS_KEYS:
            await self.app.run_action(FOCUS_KEYS[key])
            return True
        for binding in self._bindings.key_to_bindings.get(key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                return True
        return False

    async def action_submit(self) -> None:
        """Enter moves to the next field, at once (a Submitted message would let the keys
        typed after enter reach this field first)."""
        self.screen.focus_next()


class FormField(Vertical):
    """One field: name, control, help text, and an error line shown when it is invalid."""

    def __init__(self, spec: FieldSpec, value: Any) -> None:
        super().__init__(id="field-" + "-".join(spec.path), classes="form-field")
        self.spec = spec
        self.error: str | None = None
        self.control = self._make_control(value)
        # One line under the field: the error when there is one, else (in a narrow form,
        # for the focused field only) the help text.
        self._note = Static(spec.description, classes="field-note", markup=False)
        self._note.set_class(not spec.description, "-blank")
        self._switch_state = Label(_on_off(value), classes="switch-state")
        self._switch_state.set_class(bool(value), "-on")

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        self._switch_state.update(_on_off(event.value))
        self._switch_state.set_class(event.value, "-on")

    def _make_control(self, value: Any) -> Widget:
        spec, cid = self.spec, control_id(self.spec.path)
        tooltip = spec.dotted
        if spec.kind == "bool":
            return Switch(bool(value), id=cid, tooltip=tooltip)
        if spec.kind == "choice":
            options = [(str(choice), choice) for choice in spec.choices]
            selected = value if value in spec.choices else Select.NULL
            return Select(
                options, value=selected, allow_blank=False, compact=True, id=cid, tooltip=tooltip
            )
        input_type = {"int": "integer", "float": "number"}.get(spec.kind, "text")
        placeholder = {
            "int": "whole number",
            "float": "number",
            "list": "[a, b] or a, b",
            "toml": "TOML value",
        }.get(spec.kind, "")
        return FormInput(
            format_value(spec, value),
            placeholder=placeholder,
            type=input_type,  # type: ignore[arg-type]
            validate_on=[],  # pydantic validates; it alone sets -invalid
            compact=True,
            id=cid,
            tooltip=tooltip,
        )

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield Label(self.spec.name, classes="field-name", markup=False)
            yield self.control
            if isinstance(self.control, Switch):
                yield self._switch_state
            yield Static(self.spec.description, classes="field-help", markup=False)
        yield self._note

    def read(self) -> Any:
        control = self.control
        if isinstance(control, Switch):
            return control.value
        if isinstance(control, Select):
            return None if control.value is Select.NULL else control.value
        assert isinstance(control, FormInput)
        return parse_text(self.spec, control.value)

    def set_error(self, message: str | None) -> None:
        if message == self.error:
            return
        self.error = message
        text = message or self.spec.description
        self._note.update(text)
        self._note.set_class(not text, "-blank")
        self.set_class(bool(message), "-invalid")
        self.control.set_class(bool(message), "-invalid")


class FormSection(Vertical):
    """A titled group of fields and sub-sections for one (nested) model."""

    def __init__(self, path: Path, title: str, items: list[Widget], help_text: str = "") -> None:
        section_id = "section-" + ("-".join(path) or "root")
        super().__init__(id=section_id, classes="form-section")
        self.path = path
        self.border_title = title
        self.items: list[Widget] = items
        self.error: str | None = None
        self._help = Static(help_text, classes="section-help", markup=False)
        self._help.display = bool(help_text)
        self._error_line = Static("", classes="section-error", markup=False)

    def compose(self) -> ComposeResult:
        yield self._help
        yield self._error_line
        yield from self.items

    def read(self) -> dict[str, Any]:
        return read_items(self.items)

    def set_error(self, message: str | None) -> None:
        if message == self.error:
            return
        self.error = message
        self._error_line.update(message or "")
        self.set_class(bool(message), "-invalid")

    def walk_targets(self) -> Iterator[FormField | FormSection]:
        yield self
        for item in self.items:
            if isinstance(item, FormSection):
                yield from item.walk_targets()
            elif isinstance(item, FormField):
                yield item


class UnionSection(FormSection):
    """A discriminated union: the kind select, then the chosen kind's fields."""

    def __init__(self, spec: UnionSpec, values: dict[str, Any]) -> None:
        tags = tuple(spec.members)
        kind = values.get(spec.discriminator)
        kind = kind if kind in spec.members else tags[0]
        items = build_items(spec.member_specs(kind), values)
        super().__init__(spec.path, spec.path[-1], items, model_doc(spec.members[kind]))
        self.spec = spec
        self.kind = kind
        self.kind_field = FormField(spec.kind_field, kind)
        self.body = Vertical(classes="section-body")

    def compose(self) -> ComposeResult:
        yield self._help
        yield self._error_line
        yield self.kind_field
        with self.body:
            yield from self.items

    def read(self) -> dict[str, Any]:
        return {self.spec.discriminator: self.kind, **read_items(self.items)}

    def walk_targets(self) -> Iterator[FormField | FormSection]:
        yield self
        yield self.kind_field
        for item in self.items:
            if isinstance(item, FormSection):
                yield from item.walk_targets()
            elif isinstance(item, FormField):
                yield item

    @on(Select.Changed)
    async def _kind_changed(self, event: Select.Changed) -> None:
        if event.select is not self.kind_field.control:
            return
        if event.value is Select.NULL or event.value == self.kind:
            return
        # The form reads self.items, so swap them before the DOM catches up.
        self.kind = event.value
        defaults = model_defaults(self.spec.members[self.kind])
        self.items = build_items(self.spec.member_specs(self.kind), defaults)
        help_text = model_doc(self.spec.members[self.kind])
        self._help.update(help_text)
        self._help.display = bool(help_text)
        await self.body.remove_children()
        await self.body.mount_all(self.items)


def read_items(items: list[Widget]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        if isinstance(item, FormField):
            values[item.spec.name] = item.read()
        elif isinstance(item, FormSection):
            values[item.path[-1]] = item.read()
    return values


def build_items(specs: Iterable[tuple[str, Spec]], values: dict[str, Any]) -> list[Widget]:
    """Fields and sections for ``specs`` (recursively), filled from values."""
    items: list[Widget] = []
    for name, spec in specs:
        value = values.get(name)
        if isinstance(spec, FieldSpec):
            items.append(FormField(spec, value))
        elif isinstance(spec, UnionSpec):
            items.append(UnionSection(spec, plain(value) if value is not None else {}))
        else:
            nested = plain(value) if value is not None else model_defaults(spec.model)
            help_text = spec.description or model_doc(spec.model)
            fields = build_items(schema.model_specs(spec.model, spec.path), nested)
            items.append(FormSection(spec.path, name, fields, help_text))
    return items


# -- the form -----------------------------------------------------------------------------


class ConfigForm(Widget, can_focus=False):
    """An editable Experiment, validated by pydantic as you type."""

    DEFAULT_CSS = """
    ConfigForm {
        height: auto;
        width: 1fr;
    }
    ConfigForm FormSection {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text-primary;
        border-title-style: bold;
        padding: 0 1;
        margin: 0 0 1 0;
    }
    ConfigForm FormSection FormSection {
        margin: 0;
    }
    ConfigForm FormSection.-has-errors {
        border: round $error;
        border-title-color: $text-error;
    }
    ConfigForm .section-body {
        height: auto;
    }
    ConfigForm .section-help {
        color: $text-muted;
        text-style: italic;
    }
    ConfigForm .section-error {
        display: none;
        color: $text-error;
        text-style: bold;
    }
    ConfigForm FormSection.-invalid > .section-error {
        display: block;
    }
    ConfigForm FormField {
        height: auto;
    }
    ConfigForm FormField:focus-within {
        background: $boost;
    }
    ConfigForm FormField:focus-within .field-name {
        color: $text-primary;
        text-style: bold;
    }
    ConfigForm .field-row {
        height: auto;
    }
    ConfigForm .field-name {
        width: 23;
        padding-right: 1;
    }
    ConfigForm FormField Input, ConfigForm FormField Select {
        width: 28;
    }
    ConfigForm FormField Input:focus {
        background-tint: $foreground 12%;
    }
    ConfigForm FormField Select:focus > SelectCurrent {
        background-tint: $foreground 12%;
    }
    ConfigForm FormField Switch {
        border: none;
        height: 1;
        padding: 0;
        width: 8;
    }
    ConfigForm .switch-state {
        width: 20;
        padding-left: 1;
        color: $text-muted;
    }
    ConfigForm .switch-state.-on {
        color: $text-success;
    }
    ConfigForm FormField Switch:focus {
        border: none;
        background-tint: $foreground 12%;
    }
    ConfigForm .field-help {
        width: 1fr;
        height: auto;
        color: $text-muted;
        padding-left: 2;
    }
    ConfigForm .field-note {
        display: none;
        height: auto;
        color: $text-muted;
        padding-left: 23;
    }
    ConfigForm.-narrow .field-row > .field-help {
        display: none;
    }
    ConfigForm.-narrow FormField:focus-within > .field-note {
        display: block;
    }
    ConfigForm.-narrow FormField Input, ConfigForm.-narrow FormField Select {
        width: 1fr;
    }
    ConfigForm FormField.-invalid > .field-note {
        display: block;
        color: $text-error;
    }
    ConfigForm .field-note.-blank {
        display: none !important;
    }
    ConfigForm FormField.-invalid .field-name {
        color: $text-error;
        text-style: bold;
    }
    """

    class Validity(Message):
        """Posted after every validation of the form."""

        def __init__(
            self,
            form: ConfigForm,
            valid: bool,
            experiment: Experiment | None,
            errors: int,
            serial: int = 0,
        ) -> None:
            super().__init__()
            self.form = form
            self.valid = valid
            self.experiment = experiment
            self.errors = errors
            self.serial = serial  # the form's validation count when it was posted

        @property
        def control(self) -> ConfigForm:
            return self.form

    def __init__(
        self,
        experiment: Experiment,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.model: type[Experiment] = type(experiment)
        self.experiment: Experiment | None = experiment
        self.source = experiment  # what the form was loaded with: edits are changes from it
        self.valid = True
        self.error_count = 0
        self.sections: list[FormSection] = []
        self._pending = False
        self._timer: Timer | None = None  # the validation waiting for a pause in the typing
        self._validated: str | None = None  # repr of the values the shown errors are for
        self.serial = 0  # validations so far: a Validity message carries its number
        self._build(experiment)

    def _build(self, experiment: Experiment) -> None:
        items = build_items(schema.model_specs(self.model), experiment.model_dump())
        scalars = [item for item in items if isinstance(item, FormField)]
        nested = [item for item in items if not isinstance(item, FormField)]
        root = FormSection((), "experiment", scalars, model_doc(self.model))
        self.sections = [root, *(item for item in nested if isinstance(item, FormSection))]

    def compose(self) -> ComposeResult:
        yield from self.sections

    def on_mount(self) -> None:
        self._schedule_validation()

    def on_resize(self, event: events.Resize) -> None:
        # Narrow (80x24): one line per field; the focused field shows its help below it.
        self.set_class(event.size.width < NARROW_BELOW, "-narrow")

    async def load(self, experiment: Experiment) -> None:
        """Replace every value with those of ``experiment`` (e.g. another preset)."""
        self.model = type(experiment)
        self.experiment = experiment
        self.source = experiment
        self._build(experiment)
        await self.recompose()
        self.validate()

    # -- reading ----------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The form as a nested dict, as typed (unparseable text stays a string)."""
        values: dict[str, Any] = {}
        for section in self.sections:
            if section.path:
                values[section.path[-1]] = section.read()
            else:
                values.update(section.read())
        return values

    @property
    def edited(self) -> bool:
        """The form would launch something other than what it was loaded with (text that
        does not parse counts as an edit; `1` typed over `1.0` does not)."""
        experiment, _errors = schema.validate(self.model, self.values())
        return experiment != self.source

    def field(self, dotted: str) -> FormField:
        """The field at a dotted path, e.g. ``form.field("optim.lr")``."""
        for target in self._targets().values():
            if isinstance(target, FormField) and target.spec.dotted == dotted:
                return target
        raise KeyError(dotted)

    def errors(self) -> dict[str, str]:
        """The messages shown now, by dotted path ('' = the experiment as a whole)."""
        return {
            ".".join(path): target.error for path, target in self._targets().items() if target.error
        }

    def focus_first_error(self) -> bool:
        """Focus (and scroll to) the first field that shows an error; False if none does."""
        for target in self._targets().values():
            if not target.error:
                continue
            if isinstance(target, UnionSection):
                target.kind_field.control.focus()
            elif isinstance(target, FormField):
                target.control.focus()
            else:
                target.scroll_visible()
            return True
        return False

    @property
    def rebuilding(self) -> bool:
        """A kind switch is under way: a section's select shows a kind whose fields are not
        all in place yet, so what the form reads is not yet what the screen shows."""
        for target in self._targets().values():
            if isinstance(target, UnionSection) and target.kind_field.control.value != target.kind:
                return True
            if isinstance(target, FormField) and not target.control.is_mounted:
                return True
        return False

    @property
    def settled(self) -> bool:
        """Every change is taken in: no section is rebuilding and the errors shown are those
        of the values in the fields now."""
        # repr, not ==: a typed "nan" must equal itself
        return not self._pending and not self.rebuilding and self._validated == repr(self.values())

    def _targets(self) -> dict[Path, FormField | FormSection]:
        targets: dict[Path, FormField | FormSection] = {}
        for section in self.sections:
            for target in section.walk_targets():
                path = target.spec.path if isinstance(target, FormField) else target.path
                targets[path] = target
        return targets

    # -- validating -------------------------------------------------------------------

    def validate(self) -> Experiment | None:
        """Validate with pydantic; mark each invalid field with its message; post Validity."""
        targets = self._targets()
        fields = {path for path, target in targets.items() if isinstance(target, FormField)}
        sections = targets.keys() - fields
        messages: dict[Path, list[str]] = {}
        values = self.values()
        self._validated = repr(values)
        experiment, errors = schema.validate(self.model, values)
        for error in errors:
            path, text = schema.place(error, fields, sections)
            messages.setdefault(path, []).append(text)
        for path, target in targets.items():
            target.set_error("; ".join(dict.fromkeys(messages.get(path, []))) or None)
        for section in targets.values():
            if isinstance(section, FormSection):
                prefix = section.path
                bad = any(path[: len(prefix)] == prefix for path in messages if path)
                section.set_class(bad and bool(prefix), "-has-errors")
        self.experiment = experiment
        self.valid = experiment is not None
        self.error_count = len(messages)
        self.serial += 1
        self.post_message(
            self.Validity(self, self.valid, experiment, self.error_count, self.serial)
        )
        return experiment

    def _schedule_validation(self) -> None:
        # Off the key path: one validation once the typing pauses, not one per key (a
        # validation that changes what is shown restyles and re-lays-out the form).
        self._pending = True
        if self._timer is None:
            self._timer = self.set_timer(VALIDATE_AFTER, self._scheduled_validation)
        else:
            self._timer.reset()

    def _scheduled_validation(self) -> None:
        self._timer = None
        self._pending = False
        if self.is_attached:
            self.validate()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _changed(self, event: Message) -> None:
        self._schedule_validation()
