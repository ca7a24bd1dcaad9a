# --- TUI fixtures (tests/test_tui_app.py, tests/test_tui_snapshots.py) ----------------------
# A lab written only through the lab-log module: a few runs in every state, synthetic but
# plausible metric streams, events and notes, with fixed timestamps so screens are stable.

import math as _math
import subprocess as _subprocess
import sys as _sys
import time as _time
from pathlib import Path as _Path

import plotext._utility as _plotext_utility
import pytest as _pytest

# plotext de-duplicates a curve's canvas points through a set of tuples that hold strings, so
# which of two points on one cell is drawn last follows the process's string hash seed: the
# same chart differs between two test processes. Snapshots need one order; dict keeps it.
_plotext_utility.no_duplicates = lambda data: list(dict.fromkeys(data))

_DAY = "2026-01-15T"
TUI_RUN_TIMES = {  # run -> (created, started, ended); distinct so "started" sorts stably
    key: tuple(None if t is None else f"{_DAY}{t}+00:00" for t in times)
    for key, times in {
        "grok": ("09:00:00", "09:00:05", "09:02:10"),
        "nanda": ("10:00:00", "10:00:04", "10:20:00"),
        "power": ("11:00:00", "11:00:06", "11:05:00"),
        "memo": ("12:00:00", "12:00:03", "12:01:00"),
        "live": ("13:00:00", "13:00:02", None),
    }.items()
}
TUI_NOTE_TIME = "2026-01-15T14:00:00+00:00"


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + _math.exp(-x))


def synthetic_records(
    total: int, t2: int, t4: int | None, eval_every: int = 50, loss_every: int = 10
) -> list[dict]:
    """A grokking-shaped stream: per-step loss every `loss_every`, full probes every eval."""
    records = []
    for step in range(0, total + 1, loss_every):
        train = 0.01 + 0.99 * _sigmoid((step - 0.6 * t2) / (0.08 * t2))
        test = 0.01 + (0.985 * _sigmoid((step - 0.9 * t4) / (0.05 * t4)) if t4 else 0.02)
        record = {"step": step, "loss": 4.6 * _math.exp(-step / (0.3 * t2)) + 1e-4}
        if step % eval_every == 0:
            record.update(
                train_acc=round(train, 6),
                test_acc=round(test, 6),
                train_loss=4.6 * (1.0 - train) + 1e-5,
                test_loss=4.6 * (1.0 - test) + 0.05,
                weight_norm=40.0 - 25.0 * step / max(total, 1),
                last_layer_norm=12.0 - 6.0 * step / max(total, 1),
                cos_dist=0.05 * _math.exp(-step / 500),
            )
            # What the HTSR and spectral probes record (per layer; a window of the loss).
            record["alpha/embed.weight"] = 4.0 - 1.8 * step / max(total, 1)
            record["alpha/mlp.0.weight"] = 3.2 - 1.5 * step / max(total, 1)
            if step:
                record["spectral/energy"] = 10 ** (1 + 2 * step / max(total, 1))
        if step % (10 * eval_every) == 0:
            record["traps_total"] = float(step >= 0.8 * total)
        records.append(record)
    return records


def _event(step: int, kind: str, detail: str) -> dict:
    return {"step": step, "kind": kind, "detail": detail, "thresholds": {}}


def build_tui_lab(root: _Path, monkeypatch, live_pid: int | None = None):
    """Five runs: finished (grokking), stopped, crashed, finished (memorization), running.

    Returns (lab, ids) with ids keyed like TUI_RUN_TIMES. The running run's status.json
    names `live_pid` (a harmless process the caller owns) with a fresh heartbeat.
    """
    from grokterm.lab import Lab, MetricStream, write_json_atomic
    from grokterm.presets import load_experiment

    lab = Lab(root)
    ids: dict[str, str] = {}
    specs = {
        "grok": ("modadd-mlp", ["schedule.steps=6000"]),
        "nanda": ("nanda", ["schedule.steps=10000"]),
        "power": ("power-div", ["schedule.steps=20000"]),
        "memo": ("modadd-mlp", ["schedule.steps=3000", "optim.weight_decay=0.0"]),
        "live": ("digits-mlp", ["schedule.steps=5000"]),
    }
    with monkeypatch.context() as patch:
        patch.setattr("grokterm.lab.store.now_iso", lambda: TUI_NOTE_TIME)
        for key, (preset_name, overrides) in specs.items():
            preset, exp = load_experiment(preset_name, overrides)
            record = lab.create_run(exp.name, preset, exp.model_dump(mode="json"), list(exp.tags))
            ids[key] = record.id
            created, started, ended = TUI_RUN_TIMES[key]
            lab.update_run(record.id, created=created, started=started, ended=ended)

        grok = ids["grok"]
        with MetricStream(lab.run_dir(grok) / "metrics.jsonl") as stream:
            for rec in synthetic_records(6000, t2=250, t4=4450):
                stream.append(rec)
        lab.add_events(
            grok,
            [
                _event(100, "t1", "train acc 0.512 ≥ 0.5"),
                _event(250, "t2", "memorized: train acc 0.993 ≥ 0.99"),
                _event(3500, "t3", "test acc 0.214 rose 0.10 above its plateau 0.110"),
                _event(4450, "t4", "generalized: test acc 0.951 ≥ 0.95"),
                _event(4450, "outcome", "grokking: t4 - t2 = 4200 steps > 1000"),
            ],
        )
        summary = {
            "t1": 100,
            "t2": 250,
            "t3": 3500,
            "t4": 4450,
            "phase": "grokking",
            "train_acc": 1.0,
            "test_acc": 0.994,
            "best_test_acc": 0.995,
            "steps_per_second": 850.0,
            "device": "cpu",
        }
        lab.update_run(grok, status="finished", step=6000, summary=summary, device="cpu")
        lab.add_note("memorized fast: wd 1 does its job", run_id=grok, step=250)
        lab.add_note("classic grokking curve", run_id=grok)

        nanda = ids["nanda"]
        with MetricStream(lab.run_dir(nanda) / "metrics.jsonl") as stream:
            for rec in synthetic_records(2000, t2=400, t4=None):
                stream.append(rec)
        lab.add_events(nanda, [_event(400, "t2", "memorized: train acc 0.991 ≥ 0.99")])
        lab.update_run(
            nanda,
            status="stopped",
            step=2000,
            reason="stopped by the user",
            summary={"t2": 400, "phase": None, "train_acc": 1.0, "test_acc": 0.031},
        )

        lab.update_run(
            ids["power"],
            status="crashed",
            step=700,
            reason="RuntimeError: CUDA out of memory",
            summary={},
        )

        memo = ids["memo"]
        with MetricStream(lab.run_dir(memo) / "metrics.jsonl") as stream:
            for rec in synthetic_records(3000, t2=300, t4=None):
                stream.append(rec)
        lab.add_events(
            memo,
            [
                _event(300, "t2", "memorized: train acc 0.990 ≥ 0.99"),
                _event(3000, "outcome", "memorization: train memorized at 300"),
            ],
        )
        lab.update_run(
            memo,
            status="finished",
            step=3000,
            summary={"t2": 300, "phase": "memorization", "train_acc": 1.0, "test_acc": 0.02},
        )

        live = ids["live"]
        lab.update_run(live, status="running", pid=live_pid, device="cpu")
        write_json_atomic(
            lab.run_dir(live) / "status.json",
            {
                "status": "running",
                "pid": live_pid,
                "host": None,
                "device": "cpu",
                "heartbeat": _time.time() + 3600.0,  # fresh for the whole test
                "step": 1200,
                "total": 5000,
                "latest": {"loss": 0.05, "train_acc": 0.97, "test_acc": 0.41},
            },
        )
    return lab, ids


@_pytest.fixture
def idle_process():
    """A harmless live process whose pid stands in for a running run's worker."""
    proc = _subprocess.Popen([_sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


@_pytest.fixture
def tui_lab(tmp_path, monkeypatch, idle_process):
    """(lab, ids): the five-run lab of build_tui_lab, at the relative path ./lab."""
    monkeypatch.chdir(tmp_path)
    return build_tui_lab(_Path("lab"), monkeypatch, live_pid=idle_process.pid)


# --- A recorded run (tests/test_tui_monitor.py, the monitor snapshot) ----------------------
# tests/data/omnigrok-mnist-init1-monitor.jsonl.gz: every probe record of a real
# omnigrok-mnist-init1 run (1e5 steps: per-layer α, spectral energy, correlation traps) and
# its loss at 300 log-spaced steps; with the run's events and summary, in a fixed-time lab.

RECORDED_STREAM = _Path(__file__).parent / "data" / "omnigrok-mnist-init1-monitor.jsonl.gz"
_RECORDED_EVENTS = [
    (4, "t1", "train acc 0.643 ≥ 0.5"),
    (69, "t2", "memorized: train acc 0.995 ≥ 0.99"),
    (100000, "outcome", "memorization: train memorized at 69, test never generalized"),
]
_RECORDED_SUMMARY = {
    "t1": 4, "t2": 69, "t3": None, "t4": None, "phase": "memorization", "train_acc": 1.0,
    "test_acc": 0.83875, "best_test_acc": 0.921, "steps_per_second": 157.09,
    "train_seconds": 636.593, "device": "cpu",
}


def build_recorded_lab(root: _Path):
    """(lab, run_id): the recorded run, finished, with its events."""
    import gzip
    import json

    from grokterm.lab import Lab, MetricStream
    from grokterm.presets import load_experiment

    lab = Lab(root)
    preset, exp = load_experiment("omnigrok-mnist-init1")
    run_id = lab.create_run(exp.name, preset, exp.model_dump(mode="json"), list(exp.tags)).id
    stream = MetricStream(lab.run_dir(run_id) / "metrics.jsonl")
    with gzip.open(RECORDED_STREAM, "rt") as lines, stream:
        for line in lines:
            stream.append(json.loads(line))
    lab.add_events(run_id, [_event(step, kind, detail) for step, kind, detail in _RECORDED_EVENTS])
    lab.update_run(
        run_id, status="finished", step=100000, summary=_RECORDED_SUMMARY, device="cpu",
        created=f"{_DAY}09:00:00+00:00", started=f"{_DAY}09:00:05+00:00",
        ended=f"{_DAY}09:10:41+00:00",
    )
    return lab, run_id


@_pytest.fixture
def recorded_lab(tmp_path, monkeypatch):
    """(lab, run_id) of build_recorded_lab at the relative path ./lab, plus one note."""
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr("grokterm.lab.store.now_iso", lambda: TUI_NOTE_TIME)
        lab, run_id = build_recorded_lab(_Path("lab"))
        lab.add_note("first layer's α dips below 2 late", run_id=run_id, step=53894)
    return lab, run_id


# Pilot waits for the app's queues, not for an idle CPU (see tests/pilotkit.py).
from pilotkit import pilot_waits_for_the_app_not_the_cpu  # noqa: E402, F401

# A planted sweep (tests/test_tui_sweeps.py, the sweep snapshots).
from sweepkit import sweep_lab  # noqa: E402, F401

# --- compare and export fixtures (tests/test_cli_compare.py, tests/test_tui_compare_lablog.py)


def probed_records(total: int, t2: int, t4: int | None) -> list[dict]:
    """synthetic_records with the HTSR alpha and spectral energy the exports chart."""
    records = synthetic_records(total, t2, t4)
    for record in records:
        if "train_acc" in record:
            progress = record["step"] / total
            record["alpha_mean"] = 5.0 - 2.5 * progress
            record["spectral/energy"] = 2.0 * _math.exp(-3.0 * progress) + 0.01
    return records


def build_compare_lab(root: _Path, live_pid: int) -> tuple:
    """Two modadd-mlp runs differing in optim.lr: "done" finished (t2 250, t4 4450, notes),
    "live" still running with t1 and t2 = 150 detected and no end summary yet, and "old",
    crashed before a probe, with no metric stream at all. Returns (lab, ids)."""
    from grokterm.lab import Lab, MetricStream, write_json_atomic
    from grokterm.presets import load_experiment

    lab = Lab(root)
    ids = {}
    for key, lr in (("done", "1e-3"), ("live", "3e-3"), ("old", "1e-2")):
        preset, exp = load_experiment("modadd-mlp", ["schedule.steps=6000", f"optim.lr={lr}"])
        ids[key] = lab.create_run(exp.name, preset, exp.model_dump(mode="json"), []).id
    done, live = ids["done"], ids["live"]
    with MetricStream(lab.run_dir(done) / "metrics.jsonl") as stream:
        for record in probed_records(6000, t2=250, t4=4450):
            stream.append(record)
    lab.add_events(
        done,
        [
            _event(100, "t1", "train acc 0.512 ≥ 0.5"),
            _event(250, "t2", "memorized: train acc 0.993 ≥ 0.99"),
            _event(4450, "t4", "generalized: test acc 0.951 ≥ 0.95"),
            _event(4450, "outcome", "grokking: t4 - t2 = 4200 steps > 1000"),
        ],
    )
    summary = {"t1": 100, "t2": 250, "t4": 4450, "phase": "grokking", "train_acc": 1.0}
    lab.update_run(done, status="finished", step=6000, summary=summary)
    lab.add_note("memorized here", run_id=done, step=250)
    lab.add_note("a clean grokking curve", run_id=done)

    with MetricStream(lab.run_dir(live) / "metrics.jsonl") as stream:
        for record in probed_records(6000, t2=150, t4=None)[:121]:  # up to step 1200
            stream.append(record)
    lab.add_events(
        live,
        [
            _event(60, "t1", "train acc 0.52 ≥ 0.5"),
            _event(150, "t2", "memorized: train acc 0.991 ≥ 0.99"),
        ],
    )
    lab.update_run(live, status="running", pid=live_pid, device="cpu")
    write_json_atomic(
        lab.run_dir(live) / "status.json",
        {
            "status": "running", "pid": live_pid, "host": None, "device": "cpu",
            "heartbeat": _time.time() + 3600.0,  # fresh for the whole test
            "step": 1200, "total": 6000,
            "latest": {"loss": 0.05, "train_acc": 0.99, "test_acc": 0.03},
        },
    )  # fmt: skip
    lab.update_run(ids["old"], status="crashed", step=0, reason="killed", summary={})
    return lab, ids


@_pytest.fixture
def compare_lab(tmp_path, idle_process):
    """(lab, ids) of build_compare_lab in tmp_path/lab."""
    return build_compare_lab(tmp_path / "lab", live_pid=idle_process.pid)
