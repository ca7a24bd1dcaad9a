"""Hang-ups and crowds: the TUI on a real pseudo-terminal, as over SSH.

A run launched from the TUI must outlive the TUI being killed and the terminal closing;
two TUIs and several CLIs on one lab at once must lose nothing and crash nothing.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from faultkit import (
    CTRL_L,
    ENV,
    Terminal,
    assert_complete_series,
    assert_lab_readable,
    grokterm,
    kill_if_running,
    steps_of,
    wait_for,
    wait_until_done,
    write_notes_at_once,
)

from grokterm import live, processes
from grokterm.lab import Lab

REPO_PRESETS = Path(__file__).resolve().parent.parent / "experiments"
pytestmark = pytest.mark.slow


@pytest.fixture
def tty_env(tmp_path: Path) -> dict[str, str]:
    """Presets where the form's default (modadd-mlp) is a short run."""
    presets = tmp_path / "presets"
    presets.mkdir()
    text = (REPO_PRESETS / "modadd-mlp.toml").read_text()
    for old, new in (("p = 97", "p = 23"), ("steps = 6000", "steps = 2500"),
                     ("eval_every = 50", "eval_every = 20"),
                     ("checkpoint_every = 1000", "checkpoint_every = 100")):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    (presets / "modadd-mlp.toml").write_text(text)
    return {**ENV, "GROKTERM_PRESETS": str(presets), "TERM": "xterm-256color"}


@pytest.fixture
def lab_dir(tmp_path: Path):
    root = tmp_path / "lab"
    yield root
    kill_if_running(Lab(root))


def launch_from_the_form(term: Terminal, lab: Lab) -> str:
    term.wait_for_text("No runs yet")
    term.press("n")
    term.wait_for_text("ready to launch")
    term.press(CTRL_L)
    run_id = wait_for(lambda: lab.exists and lab.list_runs() and lab.list_runs()[0].id,
                      "the launched run")  # fmt: skip
    wait_for(lambda: (live.read_status(lab, run_id).step or 0) > 50, "training")
    term.wait_for_text(run_id)  # the monitor shows it
    return run_id


@pytest.mark.parametrize("how", ["hang-up", "sigkill"])
def test_a_run_launched_from_the_tui_outlives_it(lab_dir: Path, tty_env, how: str):
    lab = Lab(lab_dir)
    term = Terminal(lab_dir, tty_env)
    try:
        run_id = launch_from_the_form(term, lab)
        pid = live.read_status(lab, run_id).pid
        assert os.getsid(pid) != os.getsid(term.pid), "the run shares the TUI's session"
        os.kill(pid, signal.SIGSTOP)  # however fast the machine, it cannot end meanwhile
        if how == "hang-up":
            term.hang_up()  # the kernel sends SIGHUP to the TUI, as when SSH drops
            term.wait_exit()
        else:
            term.kill()
        assert processes.pid_alive(pid)
        os.kill(pid, signal.SIGCONT)
        view = wait_until_done(lab, run_id)
    finally:
        term.kill()
    assert view.status == "finished", view
    assert view.step == 2500
    assert_lab_readable(lab_dir)


def test_a_hang_up_stops_a_foreground_run_cleanly_and_it_resumes(lab_dir: Path, tty_env):
    """`grokterm run` without --detach belongs to its terminal: closing it stops the run
    with a checkpoint (not a kill mid-step), and resume finishes it."""
    lab = Lab(lab_dir)
    term = Terminal(lab_dir, tty_env, "run", "modadd-mlp")
    try:
        term.wait_for_text("Ctrl-C stops it")
        run_id = lab.list_runs()[0].id
        wait_for(lambda: (live.read_status(lab, run_id).step or 0) > 100, "training")
        term.hang_up()
        term.wait_exit()
    finally:
        term.kill()
    view = wait_until_done(lab, run_id)
    assert view.status == "stopped" and view.reason == "stopped by SIGHUP", view
    step = view.step
    assert (lab.run_dir(run_id) / "checkpoints" / f"step-{step:09d}.pt").is_file()
    assert steps_of(lab, run_id) == list(range(step + 1))
    assert grokterm(lab_dir, "resume", run_id).returncode == 0
    assert wait_until_done(lab, run_id).status == "finished"
    assert_complete_series(lab, run_id, last=2500)


def test_two_tuis_and_several_clis_on_one_lab(lab_dir: Path, tty_env):
    lab = Lab(lab_dir)
    first = Terminal(lab_dir, tty_env)
    second = None
    try:
        run_id = launch_from_the_form(first, lab)
        second = Terminal(lab_dir, tty_env)
        second.wait_for_text(run_id)
        second.press("a")  # a note from the second TUI, while CLIs write theirs
        second.wait_for_text(f"Note on {run_id}")
        second.press(*"from the second TUI", "\r")
        second.wait_for_text(f"Note added to {run_id}")
        written = write_notes_at_once(lab_dir, run_id, 12)
        view = wait_until_done(lab, run_id)
        assert view.status == "finished"
        for term in (first, second):
            term.wait_for_text("finished")
            assert term.alive(), term.text()
            assert "Traceback" not in term.text()
        texts = {note["text"] for note in lab.notes(run_id)}
        assert written <= texts
        assert "from the second TUI" in texts
        for term in (first, second):
            term.press("\x1b")  # back to the runs screen, then quit
            term.wait_for_text("sorted by")  # or a slow TUI reads escape and q as alt+q
            term.press("q")
            assert os.waitstatus_to_exitcode(term.wait_exit()) == 0, term.text()
    finally:
        first.kill()
        if second:
            second.kill()
    assert_lab_readable(lab_dir)


def test_the_tui_on_a_corrupt_lab_log_says_so_once_and_quits_cleanly(tmp_path: Path, tty_env):
    lab = Lab(tmp_path / "lab")
    lab.add_note("x")
    lab.add_note("y")
    lab.lablog_path.write_bytes(lab.lablog_path.read_bytes()[:-5])
    term = Terminal(lab.root, tty_env)
    try:
        term.wait_for_text("is corrupt")
        time.sleep(4)  # four more refreshes, each of which fails the same way
        assert term.text().count("is corrupt") <= 2  # one toast and the status line
        assert term.alive()
        term.press("q")
        assert os.waitstatus_to_exitcode(term.wait_exit()) == 0
    finally:
        term.kill()
