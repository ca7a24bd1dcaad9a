"""`grokterm analyze`: replay the detector on a stored run with other thresholds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def grokterm(lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grokterm", "--lab", str(lab), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def test_analyze_shows_what_other_thresholds_change(tmp_path):
    settings = [
        "--set",
        "task.p=23",
        "--set",
        "schedule.steps=200",
        "--set",
        "schedule.eval_every=20",
    ]
    assert grokterm(tmp_path, "run", "modadd-mlp", *settings).returncode == 0
    stored = json.loads(grokterm(tmp_path, "show", "1", "--json").stdout)
    assert stored["summary"]["phase"] == "memorization"
    before = tmp_path.joinpath("lablog.json").read_bytes()

    result = grokterm(tmp_path, "analyze", "1", "--set", "generalized=0.01", "--json")
    assert result.returncode == 0, result.stderr
    analysis = json.loads(result.stdout)
    assert analysis["thresholds"]["generalized"] == 0.01
    assert analysis["outcome"]["stored"] == "memorization"
    assert analysis["outcome"]["replayed"] in ("comprehension", "grokking")
    t4 = next(row for row in analysis["events"] if row["kind"] == "t4")
    assert t4["stored"] == [] and t4["replayed"] and t4["changed"]

    same = json.loads(grokterm(tmp_path, "analyze", "1", "--json").stdout)
    assert not any(row["changed"] for row in same["events"])
    assert "CHANGED" in grokterm(tmp_path, "analyze", "1", "--set", "generalized=0.01").stdout
    assert tmp_path.joinpath("lablog.json").read_bytes() == before, "analyze must not write"


def test_analyze_rejects_bad_thresholds(tmp_path):
    grokterm(tmp_path, "run", "modadd-mlp", "--set", "task.p=11", "--set", "schedule.steps=20")
    for bad in ("bogus=1", "generalized=2", "grokking_gap=soon"):
        result = grokterm(tmp_path, "analyze", "1", "--set", bad)
        assert result.returncode == 2, bad
        assert len(result.stderr.strip().splitlines()) == 1
        assert "detector" in result.stderr
