"""`grokterm compare` and `grokterm export` of several runs, in a subprocess, on a lab written
directly (tests/conftest.py build_compare_lab): a finished run, a running one whose phase
marks so far are only in its events, and an old crashed run with no metric stream."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from test_cli_analyze import grokterm

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = {"accuracy", "loss", "weight-norm", "alpha", "spectral-energy", "loss-vs-norm"}


def ok(done) -> str:
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table under `## heading`, header included."""
    part = markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    first = part[part.index("\n|") + 1 :].split("\n\n", 1)[0]
    lines = [line for line in first.splitlines() if not line.startswith("|---")]
    return [[c.strip().replace("\\", "") for c in line[1:-1].split(" | ")] for line in lines]


def test_compare_takes_a_running_runs_timings_from_its_events_like_ls(compare_lab):
    lab, ids = compare_lab
    done, live = ids["done"], ids["live"]
    listed = {view["id"]: view for view in json.loads(ok(grokterm(lab.root, "ls", "--json")))}
    assert listed[live]["status"] == "running" and listed[live]["summary"]["t2"] == 150

    comparison = json.loads(ok(grokterm(lab.root, "compare", done, live, "--json")))
    # BUG cli.py cmd_compare: it read only the summary written at the end, so "–".
    assert comparison["phases"][live]["t1"] == 60
    assert comparison["phases"][live]["t2"] == 150
    assert comparison["phases"][live]["status"] == "running"
    assert comparison["phases"][done]["t2"] == 250
    assert comparison["phases"][done]["t4-t2"] == 4200

    text = ok(grokterm(lab.root, "compare", done, live))
    t2_line = next(line for line in text.splitlines() if "t2 memorized" in line)
    assert "250" in t2_line and "150" in t2_line


def test_export_of_two_runs_is_one_comparison_with_charts_in_a_folder(compare_lab, tmp_path):
    lab, ids = compare_lab
    done, live = ids["done"], ids["live"]
    out = tmp_path / "report"
    out.mkdir()
    target = out / "lr sweep.md"
    printed = ok(grokterm(lab.root, "export", done, live, "-o", str(target))).splitlines()
    assert printed[0] == str(target)
    markdown = target.read_text()

    # The config fields that differ, one column per run; the rest folded away.
    diff = table_rows(markdown, "Config")
    assert diff == [["field", done, live], ["optim.lr", "0.001", "0.003"]]
    folded = markdown.split("<details>", 1)[1].split("</details>", 1)[0]
    assert "Unchanged config" in folded and "| task.p | 97 |" in folded
    assert markdown.count("task.p") == 1  # one config table, not one per run

    # The phase timings side by side, the running run's from its events so far.
    timings = {row[0]: row[1:] for row in table_rows(markdown, "Phase timings (steps)")}
    assert timings[""] == [done, live]
    assert timings["t1"] == ["100", "60"]
    assert timings["t2 memorized"] == ["250", "150"]
    assert timings["t4 generalized"] == ["4450", "–"]
    assert timings["outcome"] == ["grokking", "–"]
    assert timings["status"] == ["finished", "running"]

    # Overlaid charts in a folder beside the Markdown, linked by relative path.
    folder = out / "lr sweep_files"
    pngs = {path.stem: path for path in folder.glob("*.png")}
    assert set(pngs) == CHARTS
    assert not list(out.glob("*.png")) and not list(folder.glob(".*"))  # no strays, no temps
    assert sorted(printed[1:]) == sorted(str(path) for path in pngs.values())
    links = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", markdown)
    assert len(links) == len(CHARTS)
    for link in links:
        assert not re.search(r"\s", link) and not link.startswith("/"), link
        path = out / unquote(link)
        assert path.parent == folder and path.read_bytes()[:8] == PNG_MAGIC
    # Each run's events and notes follow; a note at a step is labelled as on the charts.
    assert f"## {done}" in markdown and f"## {live}" in markdown
    assert "- **step 250** (n1, " in markdown and "- **run** (" in markdown


def test_single_and_old_runs_still_export(compare_lab, tmp_path):
    lab, ids = compare_lab
    ok(grokterm(lab.root, "export", ids["done"], "-o", str(tmp_path / "one.md")))
    assert {p.stem for p in (tmp_path / "one_files").glob("*.png")} == CHARTS
    markdown = (tmp_path / "one.md").read_text()
    assert "<summary>Config (" in markdown  # a single run's config, folded whole
    assert "| t2 memorized | 250 |" in markdown

    # A run with no metric stream (crashed before its first probe) exports its tables.
    ok(grokterm(lab.root, "export", ids["old"], "-o", str(tmp_path / "old.md")))
    markdown = (tmp_path / "old.md").read_text()
    assert "| status | crashed |" in markdown and "## Charts" not in markdown
    assert not (tmp_path / "old_files").exists()


def test_an_export_that_cannot_write_its_charts_writes_no_markdown(compare_lab, tmp_path):
    lab, ids = compare_lab
    (tmp_path / "report_files").write_text("a file where the charts' folder would go")
    done = grokterm(lab.root, "export", ids["done"], "-o", str(tmp_path / "report.md"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("grokterm: error: cannot write the export ")
    assert not (tmp_path / "report.md").exists()
