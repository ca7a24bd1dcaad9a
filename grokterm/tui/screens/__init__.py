"""Screens of the grokterm TUI."""
