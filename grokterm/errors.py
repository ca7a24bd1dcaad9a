"""The one base of every error meant for the user, so a face (the CLI) catches one type."""

from __future__ import annotations


class GrokError(Exception):
    """A problem the user can act on, phrased as one line: reported without a traceback."""

    exit_code = 2


class UsageError(GrokError):
    """Bad command-line input."""


class ConfigError(GrokError):
    """An experiment that cannot be read or does not validate; the message names the field."""
