"""The runs table's config columns (the fields that tell the lab's runs apart), its sort and
`field=value` filter, and every screen's footer at 120 columns.

Labs are written through the lab-log module with configs from the presets (no training).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pilotkit import wait_for
from test_tui_app import SIZE, cells, open_monitor, row_ids, select, started, status_line, table
from textual.widgets import Input

from grokterm.lab import Lab
from grokterm.presets import load_experiment
from grokterm.tui.app import GrokApp
from grokterm.tui.config_columns import RunFilter, short_headers, value_matches
from grokterm.tui.screens.compare import CompareScreen
from grokterm.tui.screens.lablog import LabLogScreen
from grokterm.tui.screens.launch import LaunchScreen
from grokterm.tui.screens.runs import SORTABLE, RunsScreen, sort_key

FIXED = ["mark", *SORTABLE]


def add_run(lab: Lab, overrides: list[str], hour: int) -> str:
    """A finished modadd-mlp run with these overrides, started at `hour` (the default sort)."""
    preset, exp = load_experiment("modadd-mlp", overrides)
    record = lab.create_run(exp.name, preset, exp.model_dump(mode="json"), list(exp.tags))
    when = f"2026-01-15T{hour:02d}:00:00+00:00"
    lab.update_run(record.id, status="finished", step=exp.schedule.steps, created=when,
                   started=when, summary={"phase": "grokking"})
    return record.id


def sweep_lab(root: Path, runs: dict[str, list[str]]) -> tuple[Lab, dict[str, str]]:
    lab = Lab(root)
    return lab, {key: add_run(lab, overrides, hour) for hour, (key, overrides) in
                 enumerate(runs.items())}


def config_columns(app) -> list[str]:
    return [column.key.value for column in table(app).ordered_columns][len(FIXED):]


def headers(app) -> list[str]:
    return [str(column.label) for column in table(app).ordered_columns][len(FIXED):]


WEIGHT_DECAYS = {"wd0": ["optim.weight_decay=0.0"], "wd1": ["optim.weight_decay=1.0"],
                 "wd01": ["optim.weight_decay=0.1"]}


# --- config columns --------------------------------------------------------------------------


async def test_runs_that_differ_in_weight_decay_get_a_weight_decay_column(tmp_path):
    lab, ids = sweep_lab(tmp_path / "lab", {k: WEIGHT_DECAYS[k] for k in ("wd0", "wd1")})
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 2)
        assert config_columns(app) == ["optim.weight_decay"]  # and no column of a same field
        assert headers(app) == ["weight_decay"]
        assert cells(app, ids["wd0"])["optim.weight_decay"] == "0.0"
        assert cells(app, ids["wd1"])["optim.weight_decay"] == "1.0"
        assert "1 differing config field(s) →" in status_line(app)


async def test_identical_runs_have_no_config_columns_until_one_differs(tmp_path):
    """The columns are worked out again when the set of runs changes."""
    lab, ids = sweep_lab(tmp_path / "lab", {"a": [], "b": ["name=other"]})  # name: identity
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 2)
        assert config_columns(app) == [] and "config" not in status_line(app)
        await select(pilot, ids["a"])
        new = add_run(lab, ["optim.lr=0.003"], hour=5)
        await wait_for(pilot, lambda: table(app).row_count == 3, "the new run")
        assert config_columns(app) == ["optim.lr"]
        assert cells(app, new)["optim.lr"] == "0.003"
        assert cells(app, ids["a"])["optim.lr"] == "0.001"
        assert app.screen.selected_id() == ids["a"]  # the rebuilt table kept the cursor


async def test_o_sorts_by_a_config_column_and_O_reverses(tmp_path):
    lab, ids = sweep_lab(tmp_path / "lab", WEIGHT_DECAYS)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 3)
        screen = app.screen
        for _ in range(len(FIXED) + 1):  # o cycles the fixed columns, then the config ones
            if screen.sort_column == "optim.weight_decay":
                break
            await pilot.press("o")
        assert "sorted by optim.weight_decay ↓" in status_line(app)
        assert row_ids(app) == [ids["wd1"], ids["wd01"], ids["wd0"]]
        await pilot.press("O")
        assert row_ids(app) == [ids["wd0"], ids["wd01"], ids["wd1"]]
        await pilot.press("o")  # past the last column: back to the first
        assert screen.sort_column == SORTABLE[0]


async def test_filter_weight_decay_0_leaves_the_matching_runs_and_escape_clears_it(tmp_path):
    lab, ids = sweep_lab(tmp_path / "lab", WEIGHT_DECAYS)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, 3)
        await pilot.press("slash", *"weight_decay=0")
        await pilot.pause()
        assert row_ids(app) == [ids["wd0"]]  # 0.0 is 0; 0.1 is not
        await pilot.press("ctrl+u", *"weight_decay = 1 finished")  # and a word of the row
        await pilot.pause()
        assert row_ids(app) == [ids["wd1"]]
        await pilot.press("ctrl+u", *"status=finished")  # a column's name works too
        await pilot.pause()
        assert len(row_ids(app)) == 3
        await pilot.press("ctrl+u", *"wd=1")
        await pilot.pause()
        assert row_ids(app) == [] and "(no field wd)" in status_line(app)
        await pilot.press("escape")
        await pilot.pause()
        assert len(row_ids(app)) == 3 and "filter" not in status_line(app)
        assert not app.screen.query_one("#filter", Input).display and app.focused is table(app)


SIX_KNOBS = {
    "base": [],
    "other": ["optim.lr=0.003", "optim.weight_decay=0.5", "task.p=59", "model.hidden=[128]",
              "model.embed_dim=64", "schedule.steps=3000", "seed=3"],
}


async def test_at_80_columns_three_config_columns_show_and_six_at_120(tmp_path):
    lab, ids = sweep_lab(tmp_path / "lab", SIX_KNOBS)
    app = GrokApp(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, 2)
        assert config_columns(app) == ["optim.lr", "optim.weight_decay", "task.p"]
        assert "3/7 differing config fields →" in status_line(app)
        grid = table(app)  # as wide as the screen, so that it scrolls to the config columns
        assert grid.size.width <= 80 and grid.max_scroll_x > 0
        await select(pilot, ids["other"])
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: len(config_columns(app)) == 6, "six config columns")
        assert config_columns(app)[3:] == ["model.embed_dim", "model.hidden", "schedule.steps"]
        assert headers(app)[3:] == ["embed_dim", "hidden", "steps"]
        assert cells(app, ids["other"])["model.hidden"] == "[128]"
        assert "6/7 differing" in status_line(app)  # not the seed, ranked last
        assert app.screen.selected_id() == ids["other"]


# --- the parts, without the app ------------------------------------------------------------


def test_headers_are_last_names_with_parents_where_they_clash():
    fields = ["optim.weight_decay", "task.kind", "model.kind", "seed", "probes.traps_seed"]
    assert short_headers(fields) == {
        "optim.weight_decay": "weight_decay", "task.kind": "task.kind",
        "model.kind": "model.kind", "seed": "seed", "probes.traps_seed": "traps_seed",
    }


@pytest.mark.parametrize(
    ("field", "value", "text", "matches"),
    [
        ("optim.weight_decay", 1.0, "1", True),
        ("optim.weight_decay", 0.1, "0", False),
        ("optim.lr", 0.001, "1e-3", True),
        ("model.hidden", [256], "256", True),
        ("model.hidden", [256, 256], "256,256", True),
        ("model.kind", "mlp", "MLP", True),
        ("optim.embedding_lr", None, "none", True),
        ("old.unknown", "x", "x", True),
    ],
)
def test_a_field_value_test_reads_the_text_as_the_field_does(field, value, text, matches):
    assert value_matches(field, value, text) is matches


def test_the_filter_text_splits_into_words_and_field_tests():
    run_filter = RunFilter.parse("Grok  weight_decay = 1 lr=1e-3")
    assert run_filter.words == ("grok",)
    assert run_filter.tests == (("weight_decay", "1"), ("lr", "1e-3"))
    assert not RunFilter.parse("  ")


def test_sort_keys_order_mixed_config_values_without_comparing_across_types():
    values = [[128, 128], None, 3, "relu", [64], 0.5]
    assert sorted(values, key=sort_key) == [0.5, 3, [64], [128, 128], "relu", None]


# --- footer --------------------------------------------------------------------------------


def footer_keys_in_view(app) -> list[str]:
    """The keys the footer shows whole, left of the command palette's key."""
    footer = app.screen.query_one("Footer")
    palettes = footer.query(".-command-palette")
    if not palettes:
        return []  # not composed yet
    palette = palettes.first().region
    return [
        key.key_display
        for key in footer.query("FooterKey")
        if key.region.width and footer.region.contains_region(key.region)
        and not key.region.overlaps(palette) and key.region != palette
    ]


async def footer_shows(pilot, keys: set[str], where: str) -> None:
    await wait_for(pilot, lambda: keys <= set(footer_keys_in_view(pilot.app)), f"{keys} {where}")


async def test_the_footer_at_120_columns_shows_help_and_quit_on_every_screen(tui_lab):
    lab, ids = tui_lab
    app = GrokApp(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, 5)
        await footer_shows(pilot, {"?", "q"}, "on the runs")

        await open_monitor(pilot, ids["grok"])
        await footer_shows(pilot, {"?", "q"}, "on the monitor")
        await pilot.press("escape")

        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
        for key in ("grok", "memo"):
            await select(pilot, ids[key])
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), "compare")
        await footer_shows(pilot, {"?", "q"}, "on compare")
        await pilot.press("escape")

        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
        await pilot.press("L")
        await wait_for(pilot, lambda: isinstance(app.screen, LabLogScreen), "the lab log")
        await footer_shows(pilot, {"?", "q"}, "on the lab log")
        await pilot.press("escape")

        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen), "the launch form")
        await footer_shows(pilot, {"f1", "^q"}, "on the launch form")  # its fields take ? and q
