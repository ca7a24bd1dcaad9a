"""Bindings that more than one screen has, defined once, each with an id (for keymaps)."""

from __future__ import annotations

from textual.binding import Binding

BACK = Binding("escape", "back", "Back", id="back")
HELP = Binding("question_mark", "help", "Help", key_display="?", id="help")
QUIT = Binding("q", "app.quit", "Quit", id="quit")
QUIT_FROM_FORM = Binding("ctrl+q", "app.quit", "Quit", id="quit-from-form")  # where fields take q
FILTER = Binding("slash", "filter", "Filter", key_display="/", id="filter")
MARK = Binding("space", "toggle_mark", "Mark", id="mark")
TOGGLE_LOG = Binding("l", "toggle_log", "Log/linear x", id="toggle-log")
SMOOTHING = Binding("S", "smoothing", "Smoothing", id="smoothing")
NEXT_METRIC = Binding("m", "next_metric", "Other metric", id="next-metric")
STOP = Binding("s", "stop_run", "Stop", id="stop-run")
RESUME = Binding("r", "resume_run", "Resume", id="resume-run")
EXPORT = Binding("e", "export", "Export", id="export")

# The footer shows the keys of these actions first, so that a footer too narrow for all of a
# screen's keys cuts others, never help and quit (base.GrokFooter).
PINNED_ACTIONS = (HELP.action, QUIT.action)
