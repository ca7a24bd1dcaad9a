"""The grokterm terminal UI (Textual). Imports no torch."""
