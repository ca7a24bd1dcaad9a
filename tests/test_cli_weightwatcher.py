"""`grokterm analyze RUN --weightwatcher [--step N]` and the WeightWatcher section of exports.

A tiny real run (checkpoints at steps 20, 40, 60, probes at the same steps) is analysed twice
through the CLI; WeightWatcher is also run directly, in a subprocess of its own, on the same
checkpoint, so this test process never imports it (its import silences every warning and
takes the root logger).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_cli_analyze import ENV, grokterm

from grokterm.lab import Lab, LabError
from grokterm.lab.ww_results import choose_step, result_path

RUN = [
    "--set",
    "task.p=23",
    "--set",
    "schedule.steps=60",
    "--set",
    "schedule.eval_every=20",
    "--set",
    "schedule.checkpoint_every=20",
    "--set",
    "probes.traps_every=1",
]
# What WeightWatcher prints or logs when left alone; none of it may reach our stdout.
WW_NOISE = ("SMALL N PL FIT", "reetting", "PyTorch is available", "INFO", "WARNING", "Traceback")


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )


DIRECT_WW = """
    import contextlib, io, json, sys
    from pathlib import Path
    import numpy as np
    import weightwatcher as ww
    from grokterm.engine.checkpoints import load_model

    model = load_model(Path(sys.argv[1]), int(sys.argv[2]))
    np.random.seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        details = ww.WeightWatcher(model=model).analyze(randomize=True)
    rows = {
        f"{row.longname}.weight": [
            row.alpha, row.alpha_weighted, row.spectral_norm, int(row.rand_num_spikes)
        ]
        for _, row in details.iterrows()
    }
    Path(sys.argv[3]).write_text(json.dumps(rows))
"""


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A run analysed at its last checkpoint (table) and with --step 50 (JSON)."""
    lab = tmp_path_factory.mktemp("lab")
    trained = grokterm(lab, "run", "modadd-mlp", *RUN)
    assert trained.returncode == 0, trained.stderr
    last = grokterm(lab, "analyze", "1", "--weightwatcher")
    at_50 = grokterm(lab, "analyze", "1", "--weightwatcher", "--step", "50", "--json")
    return lab, Lab(lab).run_dir("modadd-mlp-1"), last, at_50


def weightwatcher_directly(run_dir: Path, step: int, out: Path) -> dict[str, list]:
    done = python(DIRECT_WW, str(run_dir), str(step), str(out))
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_table_shows_weightwatchers_own_numbers_and_nothing_it_prints(analysed, tmp_path):
    _, run_dir, last, _ = analysed
    assert last.returncode == 0, last.stderr
    assert last.stderr == ""
    for noise in WW_NOISE:
        assert noise not in last.stdout
    assert "WeightWatcher 0.7.7 on the checkpoint at step 60 (the last)" in last.stdout

    direct = weightwatcher_directly(run_dir, 60, tmp_path / "direct.json")
    assert set(direct) == {"embed.weight", "mlp.0.weight", "mlp.2.weight"}
    stored = json.loads(result_path(run_dir, 60).read_text())
    by_param = {layer["param"]: layer for layer in stored["layers"]}
    assert set(by_param) == set(direct)
    table_rows = {
        line.split("│")[1].strip(): line for line in last.stdout.splitlines() if "│" in line
    }
    for param, (alpha, weighted, lambda_max, traps) in direct.items():
        layer = by_param[param]
        assert layer["alpha"] == pytest.approx(alpha, rel=1e-12)
        assert layer["alpha_weighted"] == pytest.approx(weighted, rel=1e-12)
        assert layer["spectral_norm"] == pytest.approx(lambda_max, rel=1e-12)
        assert layer["rand_num_spikes"] == traps
        cells = [cell.strip() for cell in table_rows[param].split("│")[2:-1]]
        assert cells[0] == f"{alpha:.4g}" and cells[2] == f"{weighted:.4g}"
        assert cells[4] == f"{lambda_max:.4g}" and cells[6] == str(traps)


def test_live_values_line_up_with_weightwatchers_layers(analysed):
    """The live probe ran at the checkpoint's step: its alpha and λ_max per layer agree with
    WeightWatcher's (float32 against float64), so the layers are matched right."""
    _, _, _, at_50 = analysed
    analysis = json.loads(at_50.stdout)
    assert [row["live_steps"]["alpha"] for row in analysis["rows"]] == [40, 40, 40]
    assert [row["live_steps"]["traps"] for row in analysis["rows"]] == [40, 40, 40]
    for row in analysis["rows"]:
        assert row["live"]["alpha"] == pytest.approx(row["ww"]["alpha"], abs=0.05), row
        assert row["live"]["lambda_max"] == pytest.approx(row["ww"]["lambda_max"], rel=1e-3)
        assert row["live"]["traps"] is not None and row["note"] == ""


def test_step_picks_the_checkpoint_at_or_before_it(analysed):
    lab, run_dir, _, at_50 = analysed
    assert at_50.returncode == 0, at_50.stderr
    analysis = json.loads(at_50.stdout)
    assert (analysis["step"], analysis["asked_step"]) == (40, 50)
    assert result_path(run_dir, 40).is_file()
    assert json.loads(result_path(run_dir, 40).read_text())["checkpoint"] == "step-000000040.pt"

    before_any = grokterm(lab, "analyze", "1", "--weightwatcher", "--step", "5")
    assert before_any.returncode == 2
    assert before_any.stderr.strip().splitlines() == [
        "grokterm: error: modadd-mlp-1 has no checkpoint at or before step 5 (first: step 20)"
    ]


def test_choose_step():
    assert choose_step("r", [20, 40, 60], None) == 60
    assert choose_step("r", [20, 40, 60], 40) == 40
    assert choose_step("r", [20, 40, 60], 59) == 40
    assert choose_step("r", [20, 40, 60], 10**9) == 60
    with pytest.raises(LabError, match="no checkpoint at or before step 19"):
        choose_step("r", [20, 40, 60], 19)
    with pytest.raises(LabError, match="r has no checkpoint"):
        choose_step("r", [], None)


def test_export_has_the_weightwatcher_section_and_esd_plots(analysed, tmp_path):
    lab, _, _, _ = analysed
    target = tmp_path / "out.md"
    done = grokterm(lab, "export", "1", "-o", str(target))
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    section = text.split("### WeightWatcher", 1)[1].split("\n## ", 1)[0]
    assert "on the checkpoint at step 40" in section and "on the checkpoint at step 60" in section
    assert "| layer | α WW | α live |" in section
    images = sorted((tmp_path / "out_files").glob("modadd-mlp-1-ww-*.png"))
    assert len(images) == 6  # 3 layers x 2 checkpoints
    for image in images:
        assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"](out_files/{image.name})" in section
    assert not list(tmp_path.glob(".*")) and not list((tmp_path / "out_files").glob(".*"))


def test_run_without_checkpoint_is_a_clear_error(tmp_path):
    from grokterm import launcher
    from grokterm.presets import load_experiment

    lab = Lab(tmp_path)
    preset, experiment = load_experiment("modadd-mlp", ["task.p=11"])
    run_id = launcher.create_run(lab, experiment, preset)
    done = grokterm(tmp_path, "analyze", run_id, "--weightwatcher")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"grokterm: error: {run_id} has no checkpoint to analyse (runs/{run_id}/checkpoints/)"
    ]
    assert done.stdout == ""


def test_a_failing_child_leaves_no_result_and_names_its_log(tmp_path):
    from grokterm import launcher
    from grokterm.presets import load_experiment

    lab = Lab(tmp_path)
    preset, experiment = load_experiment("modadd-mlp", ["task.p=11"])
    run_id = launcher.create_run(lab, experiment, preset)
    checkpoints = lab.run_dir(run_id) / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    (checkpoints / "step-000000010.pt").write_bytes(b"not a checkpoint")
    done = grokterm(tmp_path, "analyze", run_id, "--weightwatcher")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot load the checkpoint at step 10 (UnpicklingError)" in done.stderr
    assert "step-000000010.log" in done.stderr
    results = lab.run_dir(run_id) / "weightwatcher"
    assert [p.name for p in results.iterdir()] == ["step-000000010.log"]


def test_flags_that_do_not_go_together(tmp_path):
    for args in (["--step", "10"], ["--weightwatcher", "--set", "generalized=0.5"]):
        done = grokterm(tmp_path, "analyze", "1", *args)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1


def test_weights_weightwatcher_skips_are_named_with_the_reason():
    """A fused attention projection: grokterm splits in_proj_weight into q, k, v; a real
    WeightWatcher call sees only out_proj. Every probed weight is either analysed or
    explained."""
    code = """
        import contextlib, io, json
        import torch
        from torch import nn
        import weightwatcher as ww
        from grokterm.engine.ww_analysis import unanalysed
        from grokterm.probes.htsr import layer_matrices

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(40, 32)
                self.attn = nn.MultiheadAttention(32, 4)
                self.pos = nn.Parameter(torch.randn(3, 32))
                self.tiny = nn.Linear(32, 4)

        torch.manual_seed(0)
        model = Model()
        with contextlib.redirect_stdout(io.StringIO()):
            details = ww.WeightWatcher(model=model).analyze()
        analysed = {f"{name}.weight" for name in details.longname}
        print(json.dumps({
            "analysed": sorted(analysed),
            "unanalysed": unanalysed(model, analysed),
            "probed": sorted(layer_matrices(model)),
        }))
    """
    done = python(code)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["analysed"] == ["attn.out_proj.weight", "embed.weight"]
    reasons = found["unanalysed"]
    assert set(found["analysed"]) | set(reasons) == set(found["probed"])
    for part in "qkv":
        assert reasons[f"attn.in_proj_weight.{part}"].startswith("fused QKV")
    assert reasons["pos"].startswith("raw parameter")
    assert reasons["tiny.weight"].startswith("fewer than 8 eigenvalues")


def test_the_parent_side_imports_neither_torch_nor_weightwatcher():
    code = """
        import sys
        import grokterm.cli, grokterm.weightwatch, grokterm.lab.export, grokterm.lab.ww_results
        print(sorted(m for m in ("torch", "weightwatcher", "matplotlib") if m in sys.modules))
    """
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
