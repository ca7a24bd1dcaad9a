import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grokterm.lab import RUN_STATUSES, Lab, LabError, RunNotFound, write_json_atomic
from grokterm.lab.store import sanitize_name

REPO_ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def start_python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path / "lab")


# -- runs --------------------------------------------------------------------------------


def test_create_run_allocates_ids_and_directories(lab: Lab) -> None:
    first = lab.create_run("demo", "cpu-demo", {"lr": 1e-3}, ["a"])
    second = lab.create_run("demo", None, {}, [])

    assert (first.id, first.seq) == ("demo-1", 1)
    assert (second.id, second.seq) == ("demo-2", 2)
    assert first.status == "queued"
    assert first.step == 0 and first.summary == {} and first.reason is None
    assert first.started is None and first.ended is None
    assert (lab.runs_dir / "demo-1" / "checkpoints").is_dir()
    assert lab.run_dir("demo-2") == lab.runs_dir / "demo-2"
    assert lab.get_run("demo-1") == first
    assert [run.id for run in lab.list_runs()] == ["demo-1", "demo-2"]


def test_run_names_are_sanitised() -> None:
    assert sanitize_name("my run/ü*x") == "my-run-x"
    assert sanitize_name("..") == "run"
    assert len(sanitize_name("a" * 100)) == 40


def test_run_id_skips_a_directory_left_by_a_lost_lab_log(lab: Lab) -> None:
    (lab.runs_dir / "demo-1").mkdir(parents=True)
    assert lab.create_run("demo", None, {}, []).id == "demo-2"


def test_update_run_replaces_fields_wholesale(lab: Lab) -> None:
    run_id = lab.create_run("demo", None, {}, []).id
    lab.update_run(run_id, summary={"a": 1, "b": 2})
    updated = lab.update_run(run_id, status="running", summary={"c": 3}, step=10)

    assert updated.summary == {"c": 3}
    assert lab.get_run(run_id).status == "running"
    assert lab.get_run(run_id).step == 10


def test_update_run_rejects_unknown_runs_and_bad_fields(lab: Lab) -> None:
    run_id = lab.create_run("demo", None, {}, []).id
    with pytest.raises(RunNotFound):
        lab.update_run("nope-9", status="running")
    with pytest.raises(LabError, match="unknown run status"):
        lab.update_run(run_id, status="exploded")
    with pytest.raises(LabError, match="cannot be changed"):
        lab.update_run(run_id, id="other")
    assert "diverged" in RUN_STATUSES


def test_resolve_exact_number_prefix_ambiguous_unknown(lab: Lab) -> None:
    for name in ["alpha", "alpha", "beta"]:
        lab.create_run(name, None, {}, [])
    for _ in range(7):
        lab.create_run("gamma", None, {}, [])  # gamma-4 .. gamma-10
    lab.create_run("alpha", None, {}, [])  # alpha-11

    assert lab.resolve("alpha-1") == "alpha-1"  # exact, though also a prefix of alpha-11
    assert lab.resolve("3") == "beta-3"
    assert lab.resolve("be") == "beta-3"
    assert lab.resolve("gamma-1") == "gamma-10"
    with pytest.raises(LabError, match=r"'alpha' is ambiguous: alpha-1, alpha-2, alpha-11"):
        lab.resolve("alpha")
    with pytest.raises(RunNotFound, match=r"no run 'zeta' in .*lab"):
        lab.resolve("zeta")
    with pytest.raises(RunNotFound):
        lab.resolve("99")


def test_reads_of_a_missing_lab_create_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "missing" / "lab")

    assert lab.list_runs() == [] and lab.notes() == [] and lab.events() == []
    assert lab.delete_events("x-1", 0) == 0
    with pytest.raises(RunNotFound):
        lab.resolve("x")
    with pytest.raises(RunNotFound):
        lab.get_run("x-1")
    with pytest.raises(RunNotFound):
        lab.update_run("x-1", status="running")
    with pytest.raises(RunNotFound):
        lab.add_note("hi", run_id="x-1")
    assert not (tmp_path / "missing").exists()


def test_reads_of_an_existing_lab_create_no_lock_file(lab: Lab) -> None:
    lab.add_note("hello")
    (lab.root / "lablog.lock").unlink(missing_ok=True)
    lab.list_runs(), lab.notes(), lab.events()
    assert not (lab.root / "lablog.lock").exists()


# -- notes and events --------------------------------------------------------------------


def test_notes_on_runs_and_on_the_lab(lab: Lab) -> None:
    run_id = lab.create_run("demo", None, {}, []).id
    general = lab.add_note("a general note")
    on_run = lab.add_note("memorised", run_id=run_id, step=300)

    assert general["run"] is None and general["step"] is None
    assert on_run["run"] == run_id and on_run["step"] == 300
    assert general["id"] != on_run["id"]
    assert [n["text"] for n in lab.notes()] == ["a general note", "memorised"]
    assert lab.notes(run_id) == [on_run]
    with pytest.raises(RunNotFound):
        lab.add_note("x", run_id="nope-9")


def test_events_are_ordered_and_deleted_after_a_step(lab: Lab) -> None:
    a = lab.create_run("a", None, {}, []).id
    b = lab.create_run("b", None, {}, []).id

    def event(step: int, kind: str) -> dict:
        return {"step": step, "kind": kind, "detail": "", "thresholds": {"train_acc": 0.99}}

    lab.add_events(a, [event(500, "t4"), event(100, "t2")])
    lab.add_events(a, [event(100, "t1")])
    lab.add_events(b, [event(50, "t2")])

    ordered = [(e.step, e.kind) for e in lab.events(a)]
    assert ordered == [(100, "t2"), (100, "t1"), (500, "t4")]
    assert all(e.time and e.run == a for e in lab.events(a))
    assert len(lab.events()) == 4

    assert lab.delete_events(a, after_step=100) == 1
    assert [e.kind for e in lab.events(a)] == ["t2", "t1"]
    assert len(lab.events(b)) == 1
    with pytest.raises(LabError, match="lacks"):
        lab.add_events(a, [{"step": 1}])
    with pytest.raises(RunNotFound):
        lab.add_events("nope-9", [event(1, "t1")])


# -- concurrency and crashes -------------------------------------------------------------

NOTE_WRITER = """
    import sys, time
    from pathlib import Path
    from grokterm.lab import Lab
    root, tag, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    lab = Lab(root)
    for i in range(200):
        lab.add_note(f"{tag}:{i}")
"""


def test_four_processes_adding_notes_at_once_lose_nothing(tmp_path: Path) -> None:
    root, go = tmp_path / "lab", tmp_path / "go"
    writers = [start_python(NOTE_WRITER, str(root), f"w{n}", str(go)) for n in range(4)]
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err

    notes = Lab(root).notes()
    assert len(notes) == 800
    assert len({note["id"] for note in notes}) == 800
    assert {note["text"] for note in notes} == {f"w{n}:{i}" for n in range(4) for i in range(200)}


KILLED_WRITER = """
    import sys
    from grokterm.lab import Lab
    lab = Lab(sys.argv[1])
    i = 0
    while True:
        lab.add_note(f"n{i}")
        print(i, flush=True)
        i += 1
"""


def test_sigkill_during_writes_keeps_the_log_loadable(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    writer = start_python(KILLED_WRITER, str(root))
    committed = []
    try:
        while len(committed) < 30:
            line = writer.stdout.readline()
            assert line, writer.stderr.read()
            committed.append(int(line))
    finally:
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
    committed += [int(line) for line in rest.split()]

    assert writer.returncode == -signal.SIGKILL
    json.loads((root / "lablog.json").read_text())
    texts = {note["text"] for note in Lab(root).notes()}
    assert {f"n{i}" for i in committed} <= texts
    Lab(root).add_note("still writable")
    assert not list(root.glob(".lablog.json.*.tmp"))


def test_failure_between_temp_write_and_rename_keeps_the_old_file(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab.add_note("before")
    before = lab.lablog_path.read_bytes()

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt("killed before rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        lab.add_note("lost")
    monkeypatch.undo()

    assert lab.lablog_path.read_bytes() == before
    assert not list(lab.root.glob(".lablog.json.*.tmp"))
    assert [n["text"] for n in lab.notes()] == ["before"]


def test_temp_file_orphaned_by_a_kill_is_ignored_then_removed(lab: Lab) -> None:
    lab.add_note("before")
    orphan = lab.root / ".lablog.json.abc123.tmp"
    orphan.write_text('{"notes": {"1": {"te')

    assert [n["text"] for n in lab.notes()] == ["before"]
    lab.add_note("after")
    assert not orphan.exists()
    assert [n["text"] for n in lab.notes()] == ["before", "after"]


def test_write_json_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    write_json_atomic(target, {"step": 1})
    write_json_atomic(target, {"step": 2, "loss": float("nan")})

    assert json.loads(target.read_text())["step"] == 2
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text())["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


# -- corruption --------------------------------------------------------------------------


def test_corrupt_lab_log_is_refused_backed_up_and_never_overwritten(lab: Lab) -> None:
    lab.add_note("before")
    corrupt = b'{"notes": {"1": {"text": "bef'
    lab.lablog_path.write_bytes(corrupt)

    with pytest.raises(LabError) as caught:
        lab.notes()
    message = str(caught.value)
    backups = list(lab.root.glob("lablog.json.corrupt-*"))

    assert len(backups) == 1 and backups[0].read_bytes() == corrupt
    assert message.startswith(f"{lab.lablog_path} is corrupt (")
    assert f"its bytes were copied to {backups[0]}" in message
    assert "\n" not in message

    with pytest.raises(LabError, match="is corrupt"):
        lab.add_note("after")
    with pytest.raises(LabError, match="is corrupt"):
        lab.create_run("demo", None, {}, [])
    assert lab.lablog_path.read_bytes() == corrupt
    assert len(list(lab.root.glob("lablog.json.corrupt-*"))) == 1


def test_lab_log_with_wrong_shape_is_corrupt(lab: Lab) -> None:
    lab.root.mkdir()
    lab.lablog_path.write_text("[1, 2]")
    with pytest.raises(LabError, match="not an object of tables"):
        lab.list_runs()


def test_empty_lab_log_reads_as_empty(lab: Lab) -> None:
    lab.root.mkdir()
    lab.lablog_path.write_text("")
    assert lab.list_runs() == []
    assert lab.add_note("first")["id"] == 1


# -- typed records -----------------------------------------------------------------------


def test_a_lab_log_of_an_older_version_loads(lab: Lab) -> None:
    """Records written before a field existed, or with fields this version does not know,
    load; unknown fields survive the next write."""
    old_run = {"id": "old-1", "seq": 1, "name": "old", "status": "finished", "summary": None,
               "from_the_future": {"x": 1}}  # fmt: skip
    old_outcome = {"run": "old-1", "step": 900, "kind": "outcome", "thresholds": {},
                   "detail": "grokking: t4 - t2 = 4200 steps > 1000"}  # fmt: skip
    lab.root.mkdir()
    write_json_atomic(
        lab.lablog_path, {"runs": {"1": old_run}, "events": {"1": old_outcome}, "notes": {}}
    )
    record = lab.get_run("old-1")
    assert (record.status, record.step, record.summary, record.ended) == ("finished", 0, {}, None)
    assert lab.events("old-1")[0].outcome == "grokking"  # read from the old detail
    lab.update_run("old-1", step=5)
    assert lab.get_run("old-1").from_the_future == {"x": 1}


def test_an_outcome_is_a_field_not_a_reading_of_its_detail(lab: Lab) -> None:
    run_id = lab.create_run("demo", None, {}, []).id
    event = {"step": 9, "kind": "outcome", "detail": "reworded: it grokked late",
             "thresholds": {}, "outcome": "grokking"}  # fmt: skip
    lab.add_events(run_id, [event])
    assert lab.events(run_id)[0].outcome == "grokking"
    stored = json.loads(lab.lablog_path.read_text())["events"]["1"]
    assert stored["outcome"] == "grokking"


def test_status_sets() -> None:
    from grokterm.lab.records import ACTIVE, FINAL, RESUMABLE, RunStatus

    assert set(RUN_STATUSES) == set(RunStatus) == ACTIVE | FINAL
    assert "running" in ACTIVE and "queued" in ACTIVE and not ACTIVE & FINAL
    assert RESUMABLE == {"stopped", "crashed"} and RESUMABLE <= FINAL


def test_the_detectors_extra_event_keys_survive_the_lab_log(lab: Lab) -> None:
    """An outcome carries its verdict, gap and ratio; an early-loss forecast its m0 and
    amplitude. The typed Event keeps what it does not name, in the log and as read back."""
    from grokterm.config import Detector
    from grokterm.phases import PhaseDetector

    run_id = lab.create_run("demo", None, {}, []).id
    late = PhaseDetector(Detector())
    late.marks.update(t2=100, t4=5000)
    memorized = PhaseDetector(Detector())
    memorized.marks["t2"] = 100
    forecast = {"step": 16, "kind": "forecast", "detail": "early loss", "thresholds": {},
                "forecast_m0": 0.25, "forecast_low_freq_amp": 0.5}  # fmt: skip
    lab.add_events(run_id, [forecast, late._decide(6000), *memorized.finish(7000)])
    early, grokked, ended = lab.events(run_id)
    assert early.model_extra == {"forecast_m0": 0.25, "forecast_low_freq_amp": 0.5}
    assert (grokked.outcome, grokked.model_extra) == ("grokking", {"gap": 4900, "ratio": 50.0})
    assert ended.outcome == "memorization"
    stored = json.loads(lab.lablog_path.read_text())["events"]
    assert stored["2"]["gap"] == 4900 and stored["1"]["forecast_m0"] == 0.25
    assert grokked.to_json()["ratio"] == 50.0
