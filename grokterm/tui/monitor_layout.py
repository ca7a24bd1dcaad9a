"""The monitor's chart slots, remembered per lab: which slots the user pinned, and to what.

The monitor has SLOTS chart slots; each shows its default chart (DEFAULT_SLOTS) unless a
pin says otherwise. Pins live in a small JSON file in the lab folder, written atomically;
a missing file means no pins, and an unreadable one means no pins plus a reason to show.
No Textual here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grokterm.lab import write_json_atomic

LAYOUT_FILE = "monitor-layout.json"
FORMAT_VERSION = 1
KINDS = ("chart", "metric")  # a built-in chart of the monitor, or one metric of the stream


@dataclass(frozen=True)
class SlotContent:
    """What a slot charts: a built-in chart by key, or one metric by its stream name."""

    kind: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {self.kind: self.name}


# Alpha and spectral energy side by side: a row at 120x40, a page at 80x24. The last slot
# has no default: it shows the metric that `m` or `M` chose.
DEFAULT_SLOTS: tuple[SlotContent | None, ...] = (
    SlotContent("chart", "accuracy"),
    SlotContent("chart", "loss"),
    SlotContent("chart", "alpha"),
    SlotContent("chart", "energy"),
    SlotContent("chart", "norm"),
    None,
)
SLOTS = len(DEFAULT_SLOTS)


def layout_path(lab_root: Path) -> Path:
    return lab_root / LAYOUT_FILE


def load_pins(lab_root: Path) -> tuple[dict[int, SlotContent], str | None]:
    """The lab's pins by slot index, and why the file was ignored (None when it was read
    or does not exist): a damaged file must not keep the monitor from opening."""
    path = layout_path(lab_root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"{path} could not be read ({exc.strerror})"
    try:
        return parse_pins(json.loads(raw)), None
    except (ValueError, TypeError) as exc:
        return {}, f"{path} is damaged ({exc})"


def parse_pins(data: object) -> dict[int, SlotContent]:
    """Pins from the file's JSON; ValueError on anything that is not this module's format."""
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a version {FORMAT_VERSION} layout")
    entries = data.get("pins")
    if not isinstance(entries, dict):
        raise ValueError("no pins")
    return {_slot_index(key): _content(value) for key, value in entries.items()}


def _slot_index(key: object) -> int:
    if not (isinstance(key, str) and key.isdigit() and 1 <= int(key) <= SLOTS):
        raise ValueError(f"no slot {key!r}")
    return int(key) - 1


def _content(value: object) -> SlotContent:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, name),) = value.items()
        if kind in KINDS and isinstance(name, str) and name:
            return SlotContent(kind, name)
    raise ValueError(f"not a chart or metric: {value!r}")


def save_pins(lab_root: Path, pins: dict[int, SlotContent]) -> None:
    """Write the pins (slots numbered from 1, as the user sees them); LabError or OSError
    when the lab folder cannot take the file."""
    entries = {str(index + 1): pins[index].to_json() for index in sorted(pins)}
    write_json_atomic(layout_path(lab_root), {"version": FORMAT_VERSION, "pins": entries})
