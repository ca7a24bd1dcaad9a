"""grokterm: a terminal lab notebook for grokking research."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from grokterm import Lab` for notebooks, without importing anything at package import.
    if name in ("Lab", "Run", "Sweep"):
        from grokterm import api

        return getattr(api, name)
    raise AttributeError(name)
