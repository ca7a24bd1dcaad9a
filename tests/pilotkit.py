"""Pilot on a busy machine: waits that hold whatever the speed of the machine.

Textual's Pilot waits between keys and in pause() with `wait_for_idle`, which calls the app
idle when the test process used little CPU over a few milliseconds. On a loaded machine the
process is simply not scheduled, so the wait returns while a key is still travelling from
the app to the focused widget and back up to the bindings: the next key then reaches the
wrong widget, or a test reads the screen midway. `pilot_waits_for_the_app_not_the_cpu`
(autouse, from conftest.py) replaces that guess with the fact: every message queue of the
app and its widgets has been worked off and every widget has finished mounting. What comes
back from thread workers is waited for with `wait_for`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

DEADLINE = 60.0  # for a stuck app only; never a statement about speed


async def workers_done(app) -> None:
    """Wait for the app's workers to end. An exclusive worker cancelled by a newer one (a
    refresh that fired again while the last one still read, on a slow machine) is normal:
    it ends too, so it does not fail the wait as `workers.wait_for_complete` would."""
    await asyncio.gather(*(worker.wait() for worker in list(app.workers)), return_exceptions=True)


async def wait_for(pilot, condition: Callable[[], object], what: str, timeout=DEADLINE) -> None:
    """Let the app run until condition() holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


_QUIET_CHECKS = 3  # consecutive quiet looks, a scheduler tick apart
_handling = [0]  # messages being handled right now, by any widget


def _textual_busy(app) -> bool:
    if _handling[0]:
        return True
    for node in [app, *list(app._registry)]:
        if getattr(node, "_closed", False):
            continue
        if not node._message_queue.empty() or node._next_callbacks:
            return True
        if node._running and not node._is_mounted:
            return True
    return False


async def _until_textual_quiet(*_args, **_kwargs) -> None:
    from textual._context import active_app

    try:
        app = active_app.get()
    except LookupError:
        await asyncio.sleep(0)
        return
    deadline = time.monotonic() + DEADLINE
    quiet = 0
    while quiet < _QUIET_CHECKS and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
        quiet = 0 if _textual_busy(app) else quiet + 1


@pytest.fixture(autouse=True)
def pilot_waits_for_the_app_not_the_cpu(monkeypatch):
    import textual.app
    import textual.pilot
    from textual.message_pump import MessagePump

    dispatch = MessagePump._dispatch_message

    async def counted_dispatch(self, message):
        _handling[0] += 1
        try:
            return await dispatch(self, message)
        finally:
            _handling[0] -= 1

    monkeypatch.setattr(MessagePump, "_dispatch_message", counted_dispatch)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", _until_textual_quiet)
    monkeypatch.setattr(textual.app, "wait_for_idle", _until_textual_quiet)
