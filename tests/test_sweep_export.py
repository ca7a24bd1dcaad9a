"""What a sweep tells and how it exports (#11 items 5-7): the statistics on planted numbers,
the Markdown export against a golden file (a lab written directly, no training), the
`grokterm sweep export` command, and the API's DataFrames.

Regenerate the golden file after an intended change with GROKTERM_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from faultkit import ENV, one_line_error

from grokterm.api import Lab
from grokterm.lab import MetricStream, write_json_atomic
from grokterm.lab.records import SweepAxis, SweepRecord
from grokterm.presets import load_experiment
from grokterm.processes import process_start_ticks
from grokterm.sweep import analysis, control
from grokterm.sweep.export import (
    export_sweep,
    layout,
    panels,
    save_number_diagram,
    save_outcome_diagram,
    spacing,
)

GOLDEN = Path(__file__).parent / "data" / "sweep-export.md"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIXED_TIME = "2026-02-01T10:00:00+00:00"


# --- the statistics, on planted numbers ----------------------------------------------------


def test_a_planted_power_law_is_recovered_with_its_error():
    xs = [0.2, 0.3, 0.5, 0.7, 0.9]
    exact = analysis.fit_power_law("task.train_fraction", xs, [500 * x**-1.7 for x in xs])
    assert exact.gamma == pytest.approx(1.7) and exact.r2 == pytest.approx(1.0)
    assert exact.stderr == pytest.approx(0.0, abs=1e-9) and exact.n == 5
    assert exact.predict(0.5) == pytest.approx(500 * 0.5**-1.7)

    noise = [1.2, 0.9, 1.1, 0.85, 1.05]  # multiplicative, fixed
    t4s = [500 * x**-1.7 * e for x, e in zip(xs, noise, strict=True)]
    noisy = analysis.fit_power_law("r", xs, t4s)
    slope, intercept = np.polyfit(np.log(xs), np.log(t4s), 1)
    residual = np.log(t4s) - (intercept + slope * np.log(xs))
    sxx = ((np.log(xs) - np.log(xs).mean()) ** 2).sum()
    assert noisy.gamma == pytest.approx(-slope)
    assert noisy.stderr == pytest.approx(math.sqrt((residual**2).sum() / 3 / sxx))
    assert 0 < noisy.r2 < 1 and abs(noisy.gamma - 1.7) < 3 * noisy.stderr


def test_a_fit_needs_three_cells_at_positive_values():
    law = analysis.fit_power_law("optim.weight_decay", [0.0, 1.0, 2.0], [900, 500, 300])
    assert law.gamma is None and law.n == 2 and law.left_out == 1
    assert law.line() == (
        "t4 against optim.weight_decay: too few cells (2 reached t4; a fit needs 3); "
        "1 cell(s) at optim.weight_decay ≤ 0 left out"
    )
    same = analysis.fit_power_law("x", [1.0, 1.0, 1.0], [5, 6, 7])
    assert same.gamma is None and "same x" in same.line()


def test_auc_of_a_perfect_separator_is_one_and_of_chance_a_half():
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    labels = [False, False, False, True, True, True]
    assert analysis.roc_auc(scores, labels) == 1.0
    assert analysis.roc_auc(scores, [not b for b in labels]) == 0.0
    assert analysis.roc_auc([0.5] * 4, [True, False, True, False]) == 0.5
    assert analysis.roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert analysis.roc_auc(scores, [True] * 6) is None


def test_spearman_is_the_correlation_of_ranks_with_ties_averaged():
    assert analysis.ranks([3.0, 1.0, 2.0, 2.0]).tolist() == [4.0, 1.0, 2.5, 2.5]
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert analysis.spearman(xs, [x**3 for x in xs]) == pytest.approx(1.0)
    assert analysis.spearman(xs, [-math.exp(x) for x in xs]) == pytest.approx(-1.0)
    assert analysis.spearman(xs, [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    assert analysis.spearman(xs, [2.0] * 5) is None


def _row(status="finished", m0=0.1, acc=0.5, outcome=None, t4=None, **coords):
    return {"status": status, "m0": m0, "test_acc": acc, "generalized": 0.9,
            "outcome": outcome, "t4": t4, **coords}  # fmt: skip


def test_the_forecast_reads_finished_cells_only_and_says_when_it_cannot():
    rows = [_row(m0=0.1 * k, acc=0.2 + 0.2 * k) for k in range(1, 5)]  # 0.4 .. 1.0
    rows += [_row(status="running", m0=9.0, acc=0.0), _row(m0=None, acc=1.0)]
    reading = analysis.read_forecast(rows)
    assert (reading.n, reading.rho, reading.auc, reading.generalized) == (4, 1.0, 1.0, 1)
    assert reading.line().endswith(
        "ROC AUC of m₀ for generalized = 1.00 (1 of 4 generalized; below 0.5, low m₀ predicts it)"
    )
    assert "too few finished cells with m₀ (2" in analysis.read_forecast(rows[:2]).line()
    no_auc = analysis.read_forecast([_row(m0=k, acc=0.1 * k) for k in range(1, 4)])
    assert no_auc.auc is None and "no AUC: 0 of 3 generalized (needs both)" in no_auc.line()


def test_seeds_of_a_point_give_its_majority_and_mark_a_disagreement():
    record = SweepRecord(
        id="sweep-1",
        axes=[SweepAxis(field="x", values=[1, 2]), SweepAxis(field="seed", values=[0, 1, 2],
                                                              replicate=True)],
    )  # fmt: skip
    rows = [
        _row(outcome="grokking", t4=100, x=1, seed=0),
        _row(outcome="memorization", x=1, seed=1),
        _row(outcome="grokking", t4=300, x=1, seed=2),
        _row(status="queued", x=2, seed=0),
        _row(status="crashed", x=2, seed=1),
    ]
    one, two = analysis.diagram_cells(record, rows)
    assert (one.index, one.outcome, one.agreement, one.disagree) == ((0,), "grokking", (2, 3), True)
    assert one.number("t4") == 200 and one.count("t4") == (2, 3)
    assert two.outcome is None and two.waiting and not two.disagree


def test_evenly_spaced_axes_keep_their_scale_and_others_get_one_slot_per_value():
    assert spacing([1e-4, 1e-3, 1e-2]) == "log" and spacing([0.0, 2.0, 4.0]) == "linear"
    assert spacing([0.3, 0.5, 0.6]) is None and spacing(["a", "b"]) is None
    lr = layout(SweepAxis(field="optim.lr", values=[1e-4, 1e-3, 1e-2]))
    assert lr.scale == "log" and lr.edges[1] == pytest.approx(math.sqrt(1e-7))
    frac = layout(SweepAxis(field="r", values=[0.3, 0.5, 0.6]))
    assert frac.ticks == [0, 1, 2] and frac.tick_labels == ["0.3", "0.5", "0.6"]


# --- a sweep lab written directly ----------------------------------------------------------

FRACTIONS = [0.3, 0.5, 0.6]
DECAYS = [0.0, 1.0]
SEEDS = [0, 1]


def _cell_plan(r: float, wd: float, seed: int) -> dict:
    """What each cell did. wd 1 generalizes with t4 = 600/r (×1.1 for seed 1): γ = 1 exactly;
    wd 0 memorizes, but r=0.5 seed 1 stays confused (the seeds disagree), and at r=0.6 one
    seed trains while the other waits."""
    if wd == 1.0:
        t4 = round(600 / r * (1.1 if seed else 1.0))
        outcome = "grokking" if t4 - 200 > 1000 else "comprehension"
        m0 = 0.5 + 0.1 * FRACTIONS.index(r) + 0.05 * seed
        return {"status": "finished", "t2": 200, "t4": t4, "outcome": outcome, "m0": m0,
                "train_acc": 1.0, "test_acc": 0.99}  # fmt: skip
    if r == 0.6:
        return {"status": "running" if seed == 0 else "queued", "t2": 300 if seed == 0 else None}
    confused = r == 0.5 and seed == 1
    return {"status": "finished", "t2": None if confused else 250, "t4": None,
            "outcome": "confusion" if confused else "memorization",
            "m0": 0.1 + 0.1 * FRACTIONS.index(r) + 0.02 * seed,
            "train_acc": 0.4 if confused else 1.0, "test_acc": 0.05 + 0.05 * seed}  # fmt: skip


def build_sweep_lab(root: Path, live_pid: int, monkeypatch) -> tuple[Lab, list[str]]:
    monkeypatch.setattr("grokterm.lab.store.now_iso", lambda: FIXED_TIME)
    lab = Lab(root)
    axes = [
        {"field": "task.train_fraction", "values": FRACTIONS, "replicate": False},
        {"field": "optim.weight_decay", "values": DECAYS, "replicate": False},
        {"field": "seed", "values": SEEDS, "replicate": True},
    ]
    sweep_fields = {"name": "frac-wd", "base": "modadd-mlp", "preset": "modadd-mlp",
                    "overrides": ["schedule.steps=4000"], "axes": axes, "parallel": 2}  # fmt: skip
    rows = []
    for r in FRACTIONS:
        for wd in DECAYS:
            for seed in SEEDS:
                sets = ["schedule.steps=4000", f"task.train_fraction={r}",
                        f"optim.weight_decay={wd}", f"seed={seed}"]  # fmt: skip
                preset, exp = load_experiment("modadd-mlp", sets)
                fields = {"name": "frac-wd", "preset": preset,
                          "config": exp.model_dump(mode="json"), "tags": []}  # fmt: skip
                rows.append(({"task.train_fraction": r, "optim.weight_decay": wd, "seed": seed},
                             fields))  # fmt: skip
    record, runs = lab.create_sweep(sweep_fields, rows)
    for run, (coords, _) in zip(runs, rows, strict=True):
        _write_cell(lab, run.id, _cell_plan(*coords.values()), live_pid)
    lab.update_sweep(record.id, scheduler_pid=live_pid, host=socket.gethostname(),
                     scheduler_started=process_start_ticks(live_pid))  # fmt: skip
    ids = record.cells
    lab.add_note("wd 0 never generalizes within 4k steps", run_id=ids[0], step=250)
    lab.add_note("seed 1 stays confused | odd", run_id=ids[5])
    return lab, ids


def _write_cell(lab: Lab, run_id: str, plan: dict, live_pid: int) -> None:
    if plan["status"] == "queued":
        return
    with MetricStream(lab.run_dir(run_id) / "metrics.jsonl") as stream:
        stream.append({"step": 400, "loss": 0.5, "forecast/m0": plan.get("m0", 0.3),
                       "forecast/low_freq_amp": 0.1})  # fmt: skip
        stream.append({"step": 500, "loss": 0.2, "train_acc": 0.9, "test_acc": 0.1})
    events = [{"step": plan["t2"], "kind": "t2", "detail": "memorized"}] if plan["t2"] else []
    if plan.get("t4"):
        events.append({"step": plan["t4"], "kind": "t4", "detail": "generalized"})
    if plan["status"] == "running":
        lab.add_events(run_id, [{"thresholds": {}, **event} for event in events])
        lab.update_run(run_id, status="running", pid=live_pid, device="cpu")
        write_json_atomic(lab.run_dir(run_id) / "status.json", {
            "status": "running", "pid": live_pid, "host": None, "device": "cpu",
            "heartbeat": time.time() + 3600.0, "step": 1200, "total": 4000,
            "latest": {"train_acc": 0.97, "test_acc": 0.08}})  # fmt: skip
        return
    events.append({"step": 4000, "kind": "outcome", "detail": plan["outcome"],
                   "outcome": plan["outcome"]})  # fmt: skip
    seed, m0 = lab.get_run(run_id).config["seed"], plan["m0"]
    if seed == 1 and plan["outcome"] == "memorization":
        events.append({"step": 400, "kind": "forecast", "detail": "m0", "forecast_m0": m0})
    lab.add_events(run_id, [{"thresholds": {}, **event} for event in events])
    summary = {"t2": plan["t2"], "t4": plan.get("t4"), "phase": plan["outcome"],
               "train_acc": plan["train_acc"], "test_acc": plan["test_acc"]}  # fmt: skip
    if seed == 0:  # seed 1's m0 comes from its forecast event or, failing that, its stream
        summary["forecast_m0"] = m0
    lab.update_run(run_id, status="finished", step=4000, summary=summary)


@pytest.fixture
def sweep_lab(tmp_path, idle_process, monkeypatch):
    return build_sweep_lab(tmp_path / "lab", idle_process.pid, monkeypatch)


def normalised(markdown: str, lab: Lab) -> str:
    markdown = re.sub(r"_Exported [^ ]+ from", "_Exported TIME from", markdown)
    return markdown.replace(str(lab.root), "LAB")


def test_the_export_matches_the_golden_page_and_links_its_pngs(sweep_lab, tmp_path):
    lab, ids = sweep_lab
    out = tmp_path / "report"
    out.mkdir()
    target = export_sweep(lab, "frac-wd", out / "frac wd.md")
    assert target == out / "frac wd.md"
    markdown = normalised(target.read_text(), lab)
    if os.environ.get("GROKTERM_UPDATE_GOLDEN"):
        GOLDEN.write_text(markdown)
    assert markdown == GOLDEN.read_text()

    folder = out / "frac wd_files"
    pngs = {path.name for path in folder.iterdir()}
    # No t4 plot against weight decay: every cell that reached t4 has the same one.
    assert pngs == {"phase-outcome.png", "phase-t4.png", "m0-vs-test-acc.png",
                    "t4-vs-task.train_fraction.png"}  # fmt: skip
    links = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", markdown)
    assert len(links) == len(pngs)
    for link in links:
        assert not re.search(r"\s", link) and not link.startswith("/"), link
        path = out / unquote(link)
        assert path.parent == folder and path.read_bytes()[:8] == PNG_MAGIC


def test_the_golden_page_says_what_was_planted():
    """The golden file holds the planted numbers (so a regenerated one cannot drift)."""
    page = GOLDEN.read_text()
    assert "t4 ∝ task.train\\_fraction^−γ: γ = 1 ± 0.081 (n = 6, R² = 0.9" in page
    assert "ROC AUC of m₀ for generalized = 1.00 (6 of 10 generalized" in page
    assert "| state | scheduling (10 finished, 1 running, 1 queued) |" in page
    assert "1 cell(s) at optim.weight\\_decay ≤ 0 left out" not in page  # wd 0 never got t4
    assert "- **frac-wd-6**, run (2026-02-01T10:00:00+00:00): seed 1 stays confused \\| odd" in page


def grokterm_in(cwd: Path, lab: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "grokterm", "--lab", str(lab), *args]
    return subprocess.run(command, capture_output=True, cwd=cwd, env=ENV, timeout=240)


def test_the_cli_exports_a_sweep_and_refuses_an_unknown_one_writing_nothing(sweep_lab, tmp_path):
    lab, _ = sweep_lab
    work = tmp_path / "work"
    work.mkdir()
    done = grokterm_in(work, lab.root, "sweep", "export", "1")
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    printed = done.stdout.decode().splitlines()
    assert printed[0] == "sweep-1.md" and len(printed) == 5
    assert all((work / line).is_file() for line in printed)

    before = sorted(p.name for p in work.rglob("*"))
    line = one_line_error(grokterm_in(work, lab.root, "sweep", "export", "sweep-9"))
    assert line == f"grokterm: error: no sweep 'sweep-9' in {lab.root} (sweeps: sweep-1)"
    line = one_line_error(grokterm_in(work, lab.root, "sweep", "export", "nope", "-o", "x.md"))
    assert "no sweep 'nope'" in line
    assert sorted(p.name for p in work.rglob("*")) == before

    line = one_line_error(grokterm_in(work, lab.root, "sweep", "show", "1", "-o", "x.md"))
    assert line == "grokterm: error: sweep show: -o/--output goes with export"


def test_sweep_show_prints_the_analysis_and_its_json_carries_it(sweep_lab, tmp_path):
    lab, _ = sweep_lab
    shown = grokterm_in(tmp_path, lab.root, "sweep", "show", "1")
    text = shown.stdout.decode()
    assert "Spearman ρ = " in text and "ROC AUC of m₀ for generalized = 1.00" in text
    assert "t4 ∝ task.train_fraction^−γ: γ = 1 ± 0.081" in text
    data = json.loads(grokterm_in(tmp_path, lab.root, "sweep", "show", "1", "--json").stdout)
    law = data["analysis"]["power_laws"][0]
    assert law["field"] == "task.train_fraction" and law["gamma"] == pytest.approx(1.0)
    assert data["analysis"]["forecast"]["auc"] == 1.0


def test_the_api_gives_a_sweep_and_a_runs_stream_as_dataframes(sweep_lab):
    lab, ids = sweep_lab
    table = Lab(lab.root).sweep("frac-wd").table()
    assert len(table) == 12 and list(table["run"]) == ids
    assert list(table.columns[:8]) == ["run", "task.train_fraction", "optim.weight_decay",
                                       "seed", "status", "step", "outcome", "t1"]  # fmt: skip
    generalized = table[table["optim.weight_decay"] == 1.0]
    assert list(generalized["t4"]) == [2000, 2200, 1200, 1320, 1000, 1100]
    assert table["t4"].dtype == float and table["t4"].isna().sum() == 6
    # m0 of every started cell: from the summary, a forecast event, or the stream.
    assert table["m0"].notna().sum() == 11 and table.loc[8, "m0"] == pytest.approx(0.3)
    assert table.loc[8, "status"] == "running" and table.loc[8, "t2"] == 300
    assert table.loc[9, "status"] == "queued" and math.isnan(table.loc[9, "m0"])

    history = Lab(lab.root).run(ids[0]).history()
    assert list(history["step"]) == [400, 500]
    assert history.loc[1, "test_acc"] == pytest.approx(0.1)
    accuracy = Lab(lab.root).run(ids[0]).history(["test_acc"])
    assert list(accuracy.columns) == ["step", "test_acc"] and len(accuracy) == 1


def test_the_diagram_data_is_the_same_from_a_sweep_view(sweep_lab):
    lab, _ = sweep_lab
    view = control.view(lab, lab.get_sweep("sweep-1"))
    cells = analysis.diagram_cells(view.record, analysis.cell_rows(lab, view))
    by_index = {cell.index: cell for cell in cells}
    assert len(cells) == 6
    assert by_index[(1, 0)].disagree and by_index[(1, 0)].agreement == (1, 2)
    assert by_index[(2, 0)].outcome is None and by_index[(2, 0)].waiting
    assert by_index[(0, 1)].number("t4") == 2100


def test_a_third_diagram_axis_gives_one_diagram_per_value_and_one_axis_one_row(tmp_path):
    axes = [SweepAxis(field="optim.lr", values=[1e-4, 1e-3, 1e-2]),
            SweepAxis(field="optim.weight_decay", values=[0.0, 1.0]),
            SweepAxis(field="model.hidden", values=[[64], [128, 128]])]  # fmt: skip
    record = SweepRecord(id="sweep-3", axes=axes)
    rows = [
        _row(outcome="grokking", t4=500 * (i + 1), **{"optim.lr": lr, "optim.weight_decay": wd,
                                                      "model.hidden": hidden})
        for i, (lr, wd, hidden) in enumerate(itertools.product(*(a.values for a in axes)))
    ]  # fmt: skip
    found = panels(record, analysis.diagram_cells(record, rows))
    assert [panel.title for panel in found] == ["model.hidden = [64]", "model.hidden = [128, 128]"]
    assert [len(panel.cells) for panel in found] == [6, 6]
    save_outcome_diagram(tmp_path / "outcome.png", record, found)
    assert save_number_diagram(tmp_path / "t4.png", record, found)

    single = SweepRecord(id="sweep-4", axes=axes[:1])
    found = panels(single, analysis.diagram_cells(single, rows[::4]))
    assert len(found) == 1 and [cell.index for cell in found[0].cells] == [(0,), (1,), (2,)]
    save_outcome_diagram(tmp_path / "one-row.png", single, found)
    assert (tmp_path / "one-row.png").read_bytes()[:8] == PNG_MAGIC
