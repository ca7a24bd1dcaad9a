"""Small modal screens: a one-line prompt, a yes/no question, and the key help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, OptionList, Static


class Prompt(ModalScreen[str | None]):
    """Ask for one line of text; dismisses with the text, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", max_length: int = 0):
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.max_length = max_length

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, max_length=self.max_length)
            yield Label("enter to confirm, escape to cancel", classes="dialog-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            self.dismiss(text)
        else:
            self.notify("Nothing entered", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            yield Label("y = yes, n / escape = no", classes="dialog-help")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened from."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, screen: Screen):
        super().__init__()
        self.source = screen

    def compose(self) -> ComposeResult:
        title = (self.source.__class__.__doc__ or "keys").strip().splitlines()[0]
        lines = [f"[b]{title}[/b]", ""]
        for binding in self.source.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                keys = binding.key_display or binding.key
                lines.append(f"  [b]{keys:<12}[/b] {binding.description}")
        lines += [
            "",
            "  [b]ctrl+p[/b]       command palette (every action of this screen)",
            "  [b]?[/b]            this help      [b]escape[/b] back / close",
        ]
        with Vertical(classes="dialog help"):
            yield Static("\n".join(lines))

    def action_close(self) -> None:
        self.dismiss(None)


class MetricPicker(ModalScreen[str | None]):
    """Choose one metric by typing part of its name (e.g. `alpha/mlp`)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, names: list[str], question: str = "Chart which metric?"):
        super().__init__()
        self.names = names
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Label(f"{self.question} Type to filter, enter to choose.", classes="dialog-title")
            yield Input(placeholder="filter, e.g. alpha/ or robust")
            yield OptionList(*self.names)

    def on_input_changed(self, event: Input.Changed) -> None:
        words = event.value.lower().split()
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([n for n in self.names if all(w in n.lower() for w in words)])
        options.highlighted = 0 if options.option_count else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one(OptionList)
        if options.highlighted is not None:
            self.dismiss(str(options.get_option_at_index(options.highlighted).prompt))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.prompt))

    def on_key(self, event) -> None:
        if event.key in ("down", "up") and isinstance(self.focused, Input):
            options = self.query_one(OptionList)
            if event.key == "down":
                options.action_cursor_down()
            else:
                options.action_cursor_up()
            event.prevent_default()

    def action_cancel(self) -> None:
        self.dismiss(None)
