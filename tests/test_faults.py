"""The fault suite: each fault a long run over SSH can meet, injected for real.

Crashes are SIGKILLs of real run processes, a full disk is a real full filesystem (or the
kernel's /dev/full), a corrupt lab log is real bytes on disk, device errors are the
exceptions torch raises, injected into the training step. After each fault the lab must be
readable, the run's record must say what happened, and resume must finish the run.
Stopping and the bit-identical resume after SIGTERM/SIGKILL are in test_resume.py and
test_cli.py; hang-ups and concurrent TUIs are in test_faults_tty.py; the soak test is
test_soak.py.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest
import torch
from faultkit import (
    ENV,
    SHORT,
    assert_complete_series,
    assert_lab_readable,
    grokterm,
    kill_if_running,
    kill_run,
    one_line_error,
    pause_at_step,
    run_log_text,
    start_detached,
    steps_of,
    wait_for,
    wait_for_step,
    wait_until_done,
    write_notes_at_once,
)

from grokterm import launcher, live, processes
from grokterm.engine import loop
from grokterm.engine.stopping import StopFlag
from grokterm.engine.worker import UserError, execute
from grokterm.lab import Lab, LabError, write_json_atomic
from grokterm.lab.store import NOTE_MAX_CHARS, AtomicJSONStorage
from grokterm.presets import load_experiment

LONG = ["--set", "schedule.steps=200000"]


@pytest.fixture
def lab_dir(tmp_path: Path):
    root = tmp_path / "lab"
    yield root
    kill_if_running(Lab(root))


def lab_bytes(root: Path) -> bytes:
    return (root / "lablog.json").read_bytes()


# --- 1. crash detection ----------------------------------------------------------------------


def test_a_sigkilled_run_shows_crashed_with_its_last_step(lab_dir: Path):
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir, *LONG)
    wait_for_step(lab, run_id, 300)
    kill_run(lab, run_id)
    last_beat = live.read_status(lab, run_id).step

    def crashed():
        view = json.loads(grokterm(lab_dir, "ls", "--json").stdout)[0]
        return view if view["status"] == "crashed" else None

    view = wait_for(crashed, "ls to say crashed")
    assert view["step"] == last_beat >= 300
    assert view["reason"] == live.VANISHED
    shown = grokterm(lab_dir, "show", run_id).stdout.decode()
    assert "crashed" in shown and str(last_beat) in shown
    out = lab_dir.parent / "crashed.md"
    assert grokterm(lab_dir, "export", run_id, "-o", str(out)).returncode == 0
    assert "| status | crashed |" in out.read_text()
    assert lab.get_run(run_id).status == "crashed"  # the export recorded it


def running_record(tmp_path: Path) -> tuple[Lab, str, Path]:
    """A lab with one run recorded as running; returns its status.json path to write."""
    lab = Lab(tmp_path / "lab")
    run_id = lab.create_run("r", None, {}, []).id
    lab.update_run(run_id, status="running")
    return lab, run_id, lab.run_dir(run_id) / "status.json"


def test_a_new_process_with_a_dead_runs_pid_does_not_keep_it_running(tmp_path, idle_process):
    lab, run_id, path = running_record(tmp_path)
    started = processes.process_start_ticks(idle_process.pid)
    assert started is not None
    status = {"status": "running", "pid": idle_process.pid, "host": None, "heartbeat": 0.0}
    for pid_started, expected in ((started, "running"), (started - 1, "crashed")):
        write_json_atomic(path, {**status, "pid_started": pid_started})
        assert live.live_view(lab, lab.get_run(run_id)).status == expected


def test_a_live_but_silent_run_stays_running_and_says_so(tmp_path, idle_process):
    """A run suspended with ctrl+z or hung on I/O: its process lives, its heartbeat stops."""
    lab, run_id, path = running_record(tmp_path)
    status = {"status": "running", "pid": idle_process.pid, "host": None, "step": 7,
              "pid_started": processes.process_start_ticks(idle_process.pid)}  # fmt: skip
    write_json_atomic(path, {**status, "heartbeat": time.time()})
    assert live.live_view(lab, lab.get_run(run_id)).reason is None
    write_json_atomic(path, {**status, "heartbeat": time.time() - 600})
    view = live.live_view(lab, lab.get_run(run_id))
    assert view.status == "running"
    assert view.reason.startswith("no heartbeat for 600 s")


# --- 2. resume from damaged state --------------------------------------------------------------


def stopped_run(lab_dir: Path, at_step: int = 450) -> tuple[Lab, str]:
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir)
    pause_at_step(lab, run_id, at_step)
    assert grokterm(lab_dir, "stop", run_id).returncode == 0
    assert wait_until_done(lab, run_id).status == "stopped"
    return lab, run_id


def test_a_torn_last_metric_line_is_skipped_by_readers_and_dropped_by_resume(lab_dir: Path):
    lab, run_id = stopped_run(lab_dir)
    stream = lab.run_dir(run_id) / "metrics.jsonl"
    steps = steps_of(lab, run_id)
    with open(stream, "ab") as file:
        file.write(b'{"step": 999999, "loss": 0.1')  # a write cut off by a crash
    assert steps_of(lab, run_id) == steps
    for args in (["ls"], ["show", run_id], ["analyze", run_id], ["compare", run_id, run_id]):
        result = grokterm(lab_dir, *args)
        assert b"Traceback" not in result.stderr, result.stderr
    out = lab_dir.parent / "export.md"
    assert grokterm(lab_dir, "export", run_id, "-o", str(out)).returncode == 0
    assert grokterm(lab_dir, "resume", run_id).returncode == 0
    assert wait_until_done(lab, run_id).status == "finished"
    assert_complete_series(lab, run_id)
    assert_lab_readable(lab_dir)


class RunsCodeWhenUnpickled:
    """A pickle that would create a file if loaded without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_resume_skips_unsafe_and_damaged_checkpoints_and_runs_no_code(lab_dir: Path):
    lab, run_id = stopped_run(lab_dir)
    folder = lab.run_dir(run_id) / "checkpoints"
    newest = sorted(folder.glob("step-*.pt"))[-1]
    marker = lab_dir.parent / "pwned"
    newest.write_bytes(pickle.dumps({"model": RunsCodeWhenUnpickled(marker)}))
    second = sorted(folder.glob("step-*.pt"))[-2]
    second.write_bytes(second.read_bytes()[:1000])  # truncated
    good_step = int(sorted(folder.glob("step-*.pt"))[-3].stem.removeprefix("step-"))

    assert grokterm(lab_dir, "resume", run_id).returncode == 0
    assert wait_until_done(lab, run_id).status == "finished"
    assert not marker.exists(), "a checkpoint was unpickled with code execution"
    log = run_log_text(lab, run_id)
    assert f"skipped checkpoint {newest.name}" in log
    assert f"skipped checkpoint {second.name}" in log
    assert_complete_series(lab, run_id)
    # The rewind went back to the newest checkpoint that loaded.
    assert good_step < int(newest.stem.removeprefix("step-"))


def test_two_resumes_at_once_start_one_process(lab_dir: Path):
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir)
    pause_at_step(lab, run_id, 250)  # so it cannot finish before the kill
    kill_run(lab, run_id)
    command = [sys.executable, "-m", "grokterm", "--lab", str(lab_dir), "resume", run_id]
    racers = [subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE) for _ in range(2)]
    codes = sorted(proc.wait(timeout=120) for proc in racers)
    assert codes == [0, 2], [proc.stderr.read() for proc in racers]
    trainer = pause_at_step(lab, run_id, 300)
    # A worker started by hand on a run that trains leaves at once and changes nothing.
    intruder = subprocess.run(
        [sys.executable, "-m", "grokterm.engine.worker", "--lab", str(lab_dir), run_id,
         "--resume"],
        env=ENV, capture_output=True, timeout=120,
    )  # fmt: skip
    os.kill(trainer, signal.SIGCONT)
    assert intruder.returncode == 1
    assert b"already being trained by another process" in intruder.stderr
    assert wait_until_done(lab, run_id).status == "finished", run_log_text(lab, run_id)
    assert_complete_series(lab, run_id)


# --- 5. storage faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # truncated
        lambda raw: b"\x00" * len(raw),  # zeroed by a failing disk
        lambda raw: b'["not", "tables"]',  # valid JSON of the wrong shape
        lambda raw: raw[:10] + b"\xff\xfe" + raw[12:],  # not UTF-8
    ],
    ids=["truncated", "zeroed", "wrong-shape", "not-utf8"],
)
def test_a_corrupt_lab_log_is_refused_kept_and_repaired(lab_dir: Path, damage):
    assert grokterm(lab_dir, "run", "modadd-mlp", "--set", "task.p=11",
                    "--set", "schedule.steps=20").returncode == 0  # fmt: skip
    assert grokterm(lab_dir, "note", "1", "kept").returncode == 0
    good = lab_bytes(lab_dir)
    corrupt = damage(good)
    (lab_dir / "lablog.json").write_bytes(corrupt)

    for args in (["ls"], ["show", "1"], ["note", "1", "lost?"], ["run", "modadd-mlp"]):
        line = one_line_error(grokterm(lab_dir, *args))
        assert "is corrupt" in line and "grokterm repair" in line
    assert lab_bytes(lab_dir) == corrupt, "a corrupt lab log was overwritten"
    backups = list(lab_dir.glob("lablog.json.corrupt-*"))
    assert [b.read_bytes() for b in backups] == [corrupt]
    assert len(list((lab_dir / "runs").iterdir())) == 1, "a run was created anyway"

    repaired = grokterm(lab_dir, "repair")
    assert repaired.returncode == 0, repaired.stderr
    assert b"restored" in repaired.stdout
    # The version before the last write has the finished run; the note, the last write,
    # comes back from the notes journal.
    runs = json.loads(grokterm(lab_dir, "ls", "--json").stdout)
    assert [(r["id"], r["status"]) for r in runs] == [("modadd-mlp-1", "finished")]
    assert [n["text"] for n in Lab(lab_dir).notes()] == ["kept"]
    assert grokterm(lab_dir, "note", "1", "after repair").returncode == 0
    assert_lab_readable(lab_dir)


def test_a_lost_lab_log_is_rebuilt_from_the_run_folders(lab_dir: Path):
    lab = Lab(lab_dir)
    finished = start_detached(lab_dir, "--set", "schedule.steps=200")
    assert wait_until_done(lab, finished).status == "finished"
    killed = start_detached(lab_dir)
    pause_at_step(lab, killed, 300)
    kill_run(lab, killed)
    before = {e.kind for e in lab.events(finished)}
    lab.add_note("wd 1 memorizes in 50 steps", run_id=finished, step=50)
    lab.add_note("a lab-wide thought")
    for path in lab_dir.glob("lablog.json*"):
        path.unlink()  # the log and its previous version: all gone
    assert json.loads(grokterm(lab_dir, "ls", "--json").stdout) == []

    result = grokterm(lab_dir, "repair")
    assert result.returncode == 0, result.stderr
    assert f"put back {finished} from its folder: finished at step 200".encode() in result.stdout
    assert f"put back {killed} from its folder: crashed".encode() in result.stdout
    assert {e.kind for e in lab.events(finished)} == before  # re-derived by the detector
    assert "t2" in {e.kind for e in lab.events(killed)}
    assert lab.get_run(finished).config["schedule"]["steps"] == 200
    assert b"put back 2 note(s)" in result.stdout
    assert [(n["run"], n["step"], n["text"]) for n in lab.notes()] == [
        (finished, 50, "wd 1 memorizes in 50 steps"),
        (None, None, "a lab-wide thought"),
    ]
    again = grokterm(lab_dir, "repair")  # idempotent: nothing twice
    assert b"put back" not in again.stdout and len(lab.notes()) == 2
    assert grokterm(lab_dir, "resume", killed).returncode == 0
    assert wait_until_done(lab, killed).status == "finished", run_log_text(lab, killed)
    assert_complete_series(lab, killed)
    kinds = [event.kind for event in lab.events(killed)]
    assert len(kinds) == len(set(kinds)), kinds
    newest = start_detached(lab_dir, "--set", "schedule.steps=20")
    assert newest not in (finished, killed)
    assert wait_until_done(lab, newest).status == "finished", run_log_text(lab, newest)
    assert_lab_readable(lab_dir)


def test_repair_of_a_healthy_lab_log_changes_nothing(tmp_path: Path):
    lab = Lab(tmp_path / "lab")
    lab.add_note("fine")
    before = lab_bytes(lab.root)
    result = grokterm(lab.root, "repair")
    assert result.returncode == 0 and b"nothing to repair" in result.stdout, result
    assert lab_bytes(lab.root) == before


def test_a_writer_cannot_leave_fewer_runs_or_notes_than_the_log_held(tmp_path: Path):
    lab = Lab(tmp_path / "lab")
    lab.create_run("r", None, {}, [])
    lab.add_note("one")
    lab.add_note("two")
    before = lab_bytes(lab.root)
    storage = AtomicJSONStorage(lab.lablog_path)
    tables = storage.read()
    del tables["notes"]["2"]
    with pytest.raises(LabError, match="fewer notes than it held"):
        storage.write(tables)
    assert lab_bytes(lab.root) == before
    assert [n["text"] for n in lab.notes()] == ["one", "two"]


def test_a_lab_log_corrupted_under_a_run_costs_no_work(lab_dir: Path):
    """The run ends at its next lab-log write with a checkpoint and the reason; after
    `grokterm repair` it resumes, and the events it could not write are re-derived."""
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir)
    pid = pause_at_step(lab, run_id, 300)  # so it cannot finish before the log is corrupt
    with filelock.FileLock(lab_dir / "lablog.lock"):  # not between the run's read and write
        (lab_dir / "lablog.json").write_bytes(lab_bytes(lab_dir)[:-20])
    os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not processes.pid_alive(pid), "the run to end")
    status = live.read_status(lab, run_id)
    assert status.status == "crashed" and "is corrupt" in status.reason, status
    assert "the lab log could not record the end of the run" in run_log_text(lab, run_id)
    assert_lab_readable_but_the_log(lab_dir)

    result = grokterm(lab_dir, "repair")
    assert result.returncode == 0, result.stderr
    assert f"recorded the end of {run_id}".encode() in result.stdout
    assert lab.get_run(run_id).status == "crashed"
    assert grokterm(lab_dir, "resume", run_id).returncode == 0
    assert wait_until_done(lab, run_id).status == "finished", run_log_text(lab, run_id)
    assert_complete_series(lab, run_id)
    kinds = [event.kind for event in lab.events(run_id)]
    assert "outcome" in kinds and len(kinds) == len(set(kinds)), kinds
    assert_lab_readable(lab_dir)


def assert_lab_readable_but_the_log(root: Path) -> None:
    good = root / "lablog.json"
    saved = good.read_bytes()
    try:
        good.write_bytes(b"{}")
        assert_lab_readable(root)
    finally:
        good.write_bytes(saved)


def test_a_failing_metric_write_ends_the_run_with_a_clear_reason(tmp_path: Path):
    """The kernel's /dev/full fails every write with ENOSPC: a real full disk for one file."""
    lab = Lab(tmp_path / "lab")
    _, experiment = load_experiment("modadd-mlp", SHORT[1::2])
    run_id = launcher.create_run(lab, experiment, "modadd-mlp")
    (lab.run_dir(run_id) / "metrics.jsonl").symlink_to("/dev/full")
    launcher.start(lab, run_id)
    view = wait_until_done(lab, run_id)
    assert view.status == "crashed"
    assert "no space left on the device writing" in view.reason
    assert "metrics.jsonl" in view.reason
    assert live.read_status(lab, run_id).status == "crashed"
    (lab.run_dir(run_id) / "metrics.jsonl").unlink()
    assert_lab_readable(lab.root)
    # It ended before its first checkpoint: resume starts it again from step 0.
    assert b"from step 0" in grokterm(lab.root, "resume", run_id).stdout
    assert wait_until_done(lab, run_id).status == "finished", run_log_text(lab, run_id)
    assert_complete_series(lab, run_id)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 64 MiB filesystem (tmpfs) to fill up; skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        kill_if_running(Lab(mount / "lab"))
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:  # unbuffered: close has nothing to flush
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def test_a_full_disk_ends_the_run_readably_and_resume_finishes(small_disk: Path):
    lab_dir = small_disk / "lab"
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir)
    pid = pause_at_step(lab, run_id, 150)
    filler = fill(small_disk)
    os.kill(pid, signal.SIGCONT)
    view = wait_until_done(lab, run_id)
    assert view.status == "crashed", view
    assert "no space left on the device" in view.reason, view
    assert_lab_readable(lab_dir)
    steps = steps_of(lab, run_id)
    assert steps == list(range(len(steps)))

    filler.unlink()
    assert grokterm(lab_dir, "resume", run_id).returncode == 0
    assert wait_until_done(lab, run_id).status == "finished", run_log_text(lab, run_id)
    assert_complete_series(lab, run_id)
    assert_lab_readable(lab_dir)


@pytest.fixture
def one_torch_thread():
    """Training in this process: one thread, as the run processes have (two tests share
    two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- 6. device faults --------------------------------------------------------------------------


def faulty_training_step(error: BaseException, at_step: int):
    real = loop.train_step

    def train_step(session):
        if session.step + 1 == at_step:
            raise error
        return real(session)

    return train_step


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)"),
            "CUDA out of memory at step 349: CUDA out of memory. Tried to allocate 2.00 GiB",
        ),
        (
            RuntimeError("CUDA error: an illegal memory access was encountered"),
            "RuntimeError at step 349: CUDA error: an illegal memory access",
        ),
    ],
    ids=["oom", "cuda-error"],
)
def test_an_exception_inside_training_crashes_the_run_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread, error, expected
):
    lab = Lab(tmp_path / "lab")
    _, experiment = load_experiment("modadd-mlp", SHORT[1::2])
    run_id = launcher.create_run(lab, experiment, "modadd-mlp")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "train_step", faulty_training_step(error, at_step=350))
        with pytest.raises(UserError, match="crashed"):
            execute(lab, run_id, stop=StopFlag())
    record = lab.get_run(run_id)
    assert record.status == "crashed"
    assert expected in record.reason
    assert type(error).__name__ in run_log_text(lab, run_id)  # the traceback
    assert live.read_status(lab, run_id).status == "crashed"
    assert steps_of(lab, run_id) == list(range(350))
    assert all(event.step < 350 for event in lab.events(run_id))
    assert_lab_readable(lab.root)

    outcome = execute(lab, run_id, stop=StopFlag(), resume=True)
    assert outcome.status == "finished"
    assert_complete_series(lab, run_id)


# --- 7. bad input ------------------------------------------------------------------------------

HOSTILE_TOML = {
    "deeply nested": "a = " + "[" * 50_000 + "]" * 50_000,
    "binary": bytes(range(256)) * 8,
    "NUL bytes": b'name = "x\0y"\n',
    "huge": b"# " + b"x" * (1 << 20) + b"\n",
    "duplicate key": 'name = "a"\nname = "b"\n',
    "unknown field": 'name = "x"\n[optim]\nlearning_rate = 1e-3\n',
    "unknown kind": '[model]\nkind = "resnet"\n',
    "wrong type": '[schedule]\nsteps = "many"\n',
    "negative lr": "[optim]\nlr = -1e-3\n",
    "train fraction 0": "[task]\ntrain_fraction = 0\n",
    "train fraction > 1": "[task]\ntrain_fraction = 1.5\n",
    "p not prime for /": '[task]\nop = "/"\np = 96\n',
    "infinite steps": "[schedule]\nsteps = inf\n",
    "nan lr": "[optim]\nlr = nan\n",
}


@pytest.mark.parametrize("case", list(HOSTILE_TOML))
def test_hostile_experiment_files_get_one_line_and_leave_no_lab(tmp_path: Path, case: str):
    content = HOSTILE_TOML[case]
    path = tmp_path / "hostile.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    lab_dir = tmp_path / "lab"
    line = one_line_error(grokterm(lab_dir, "run", str(path)))
    assert len(line) < 600, line
    assert not lab_dir.exists()


@pytest.mark.parametrize(
    "setting",
    ["optim.lr=-1", "task.train_fraction=0", "task.train_fraction=1.01", "task.p=0",
     "model.hidden=" + "[" * 5000, "seed=1e400", "schedule.steps=-5"],
)  # fmt: skip
def test_hostile_overrides_get_one_line_and_leave_no_lab(tmp_path: Path, setting: str):
    lab_dir = tmp_path / "lab"
    one_line_error(grokterm(lab_dir, "run", "modadd-mlp", "--set", setting))
    assert not lab_dir.exists()


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("notes") / "lab"
    result = grokterm(root, "run", "modadd-mlp", "--set", "task.p=11", "--set", "schedule.steps=30")
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["x" * (NOTE_MAX_CHARS + 1)], None, "at most 10,000"),
        (["-"], b"y" * (4 * NOTE_MAX_CHARS + 1), "longer than 10,000"),
        (["bad \udcff byte"], None, "not valid UTF-8"),
        (["-"], b"caf\xe9 latin-1", "not UTF-8"),
        (["clear \x1b[2J screen"], None, "control character"),
        (["   \n\t "], None, "empty"),
        (["fine", "--step", "-3"], None, "negative"),
    ],
    ids=["huge", "huge-stdin", "surrogate", "latin1-stdin", "escape", "blank", "neg-step"],
)
def test_bad_notes_get_one_line_and_change_nothing(small_lab: Path, args, stdin, message):
    before = lab_bytes(small_lab)
    line = one_line_error(grokterm(small_lab, "note", "1", *args, stdin=stdin))
    assert message in line, line
    assert lab_bytes(small_lab) == before


def test_a_long_multiline_note_from_stdin_is_kept_exactly(small_lab: Path):
    text = "\n".join(f"line {i}: αβγ ✓ | <b>" for i in range(300))[:NOTE_MAX_CHARS]
    result = grokterm(small_lab, "note", "1", "-", stdin=text.encode())
    assert result.returncode == 0, result.stderr
    assert Lab(small_lab).notes("modadd-mlp-1")[-1]["text"] == text.strip()


HOSTILE_NOTES = [
    "<script>alert(1)</script>",
    "</details><img src=x onerror=alert(1)>",
    "| fake | table |\n|---|---|\n| a | b |",
    "[click](javascript:alert(1)) ![x](http://example.invalid/x.png)",
    "# not a heading\n```\nnot code\n```",
    "<!-- swallow the rest",
    "*not bold* _not it_ ~~no~~ \\ `no code`",
]


def test_notes_with_markdown_and_html_cannot_break_the_export(small_lab: Path, tmp_path: Path):
    for text in HOSTILE_NOTES:
        assert grokterm(small_lab, "note", "1", text).returncode == 0
    out = tmp_path / "export.md"
    assert grokterm(small_lab, "export", "1", "-o", str(out)).returncode == 0
    markdown = out.read_text()
    for raw in ("<script", "<img", "<!--", "\n```", "\n# not"):
        assert raw not in markdown, raw
    assert markdown.count("</details>") == markdown.count("<details>") == 1  # the config's
    notes = [line for line in markdown.splitlines() if line.startswith("- **")]
    assert len(notes) >= len(HOSTILE_NOTES)
    for line in notes:  # every bracket, bar, backtick, star is escaped: no link, no table
        assert not re.search(r"(?<!\\)[\[\]|`*_~]", line.split("): ", 1)[1]), line


@pytest.mark.parametrize(
    "args",
    [["show", "nope-9"], ["note", "nope-9", "x"], ["stop", "nope-9"], ["resume", "nope-9"],
     ["export", "nope-9"], ["compare", "1", "nope-9"], ["analyze", "nope-9"],
     ["show", "../../etc/passwd"], ["show", ""], ["resume", "1"]],
)  # fmt: skip
def test_unknown_or_unfit_run_ids_get_one_line_and_change_nothing(small_lab: Path, args):
    before = lab_bytes(small_lab)
    one_line_error(grokterm(small_lab, *args))
    assert lab_bytes(small_lab) == before


def test_many_cli_writers_at_once_lose_nothing(small_lab: Path):
    written = write_notes_at_once(small_lab, "1", 18)
    assert written <= {note["text"] for note in Lab(small_lab).notes()}


def test_sigterm_ends_a_run_with_a_checkpoint_at_its_last_step(lab_dir: Path):
    """SIGTERM is honoured at the next step (the 60 s wait is a deadline, not a timing)."""
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir, *LONG)
    wait_for_step(lab, run_id, 100)
    pid = live.read_status(lab, run_id).pid
    os.kill(pid, signal.SIGTERM)
    view = wait_until_done(lab, run_id)
    assert view.status == "stopped" and "SIGTERM" in view.reason, view
    step = view.step
    assert (lab.run_dir(run_id) / "checkpoints" / f"step-{step:09d}.pt").is_file()
    assert steps_of(lab, run_id)[-1] == step


def test_stop_reaches_a_suspended_run(lab_dir: Path):
    lab = Lab(lab_dir)
    run_id = start_detached(lab_dir, *LONG)
    wait_for_step(lab, run_id, 100)
    os.kill(live.read_status(lab, run_id).pid, signal.SIGSTOP)  # as ctrl+z would
    assert grokterm(lab_dir, "stop", run_id).returncode == 0
    view = wait_until_done(lab, run_id)
    assert view.status == "stopped", view
