"""What screens ask of the App, and what the App tells screens about the lab.

Screens post requests (they bubble from the screen to the App, which handles them); the
App posts LabChanged and LabProblem to the screens after each refresh of the lab.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.screen import Screen

from grokterm.tui.state import LabChange


@dataclass
class OpenMonitor(Message):
    run_id: str


@dataclass
class OpenLaunch(Message):
    preset: str | None = None
    run_id: str | None = None  # start from this run's config instead of a preset


@dataclass
class OpenCompare(Message):
    run_ids: list[str]


class OpenLabLog(Message):
    pass


class OpenSweeps(Message):
    pass


@dataclass
class OpenSweep(Message):
    """A sweep's phase diagram."""

    sweep_id: str


@dataclass
class ShowHelp(Message):
    screen: Screen


@dataclass
class AddNote(Message):
    """Ask for a note's text, then save it: on a run (at a step), or on the lab (run_id None)."""

    run_id: str | None
    step: int | None = None


@dataclass
class StopRun(Message):
    run_id: str


@dataclass
class ResumeRun(Message):
    run_id: str


@dataclass
class ExportRuns(Message):
    run_ids: list[str]


@dataclass
class ExportSweep(Message):
    sweep_id: str


class RefreshLab(Message):
    """Read the lab now rather than at the next tick (a screen began watching a stream)."""


@dataclass
class LabChanged(Message):
    """The lab's snapshot (LabState.snapshot) has changed in these ways."""

    change: LabChange


@dataclass
class LabProblem(Message):
    """The lab could not be read; screens say so where they show its state."""

    message: str
