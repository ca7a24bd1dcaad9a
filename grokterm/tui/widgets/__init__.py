"""Widgets of the grokterm TUI."""

NARROW_BELOW = 110  # columns: below this, charts stack and side panes move under them
