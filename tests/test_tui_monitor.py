"""The monitor's dashboard (issue #12): the five default charts with α = 2 and traps, chart
slots pinned per lab (and a damaged layout file ignored), the 80x24 pages, and an honest
status line (a smoothed rate while running, none once the run has ended).

Most tests open the one real run of the `recorded_lab` fixture (conftest.py): omnigrok-mnist-
init1, 1e5 steps, with correlation traps at steps 240, 11491, 24886 and 53894.
"""

from __future__ import annotations

import json
import time

import pytest
from pilotkit import wait_for, workers_done
from textual.notifications import Notify
from textual.widgets import Static

from grokterm.lab import Lab, write_json_atomic
from grokterm.tui import messages
from grokterm.tui.app import GrokApp
from grokterm.tui.monitor_layout import LAYOUT_FILE, SlotContent, load_pins, save_pins
from grokterm.tui.panels import PANELS, trap_markers
from grokterm.tui.rate import StepRate, eta_text
from grokterm.tui.screens.monitor import TITLE_MAX, MonitorScreen, slot_title
from grokterm.tui.series import RunSeries

SIZE = (120, 40)
DEFAULT_TITLES = [
    "accuracy",
    "loss",
    "HTSR α per layer  ×n: traps",
    "spectral energy of the loss",
    "weight norm",
]
# --- helpers -------------------------------------------------------------------------------


async def monitor_of(pilot, run_id: str) -> MonitorScreen:
    """Open the run's monitor and wait until every chart is drawn from every record."""
    app = pilot.app
    await wait_for(pilot, lambda: app.state.snapshot.loaded, "the first read of the lab")
    app.post_message(messages.OpenMonitor(run_id))
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
    screen = app.screen
    await wait_for(pilot, lambda: drawn(screen), "the charts drawn")
    return screen


def drawn(screen: MonitorScreen) -> bool:
    shown = [chart for chart in screen.charts() if chart.display]
    return (
        screen._drawn_version == screen.tail.series.version
        and len(screen.tail.series.names()) > 0
        and all(chart.curves and not chart._dirty for chart in shown)
    )


def titles(screen: MonitorScreen) -> list[str]:
    """Chart titles without the marks of the slot in use and of a pin."""
    return [bare(chart.title) for chart in screen.charts()]


def bare(title: str) -> str:
    return title.removeprefix("▸ ").replace(" · pinned", "")


def status_text(screen: MonitorScreen) -> str:
    return str(screen.query_one("#monitor-status", Static).content)


def warnings(sent: list) -> list[str]:
    return [
        m.notification.message
        for m in sent
        if isinstance(m, Notify) and m.notification.severity == "warning"
    ]


# --- the default dashboard -----------------------------------------------------------------


async def test_the_default_monitor_shows_accuracy_loss_alpha_energy_and_norm(recorded_lab):
    lab, run_id = recorded_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_of(pilot, run_id)
        charts = {chart.id: chart for chart in screen.charts()}
        assert list(charts) == [f"slot-{n}" for n in range(1, 7)]
        assert all(chart.display for chart in charts.values())
        assert titles(screen)[:5] == DEFAULT_TITLES
        assert titles(screen)[5].startswith("alpha_mean")  # the first other metric

        alpha = charts["slot-3"]
        assert [c.label for c in alpha.curves] == ["mlp.0", "mlp.2", "mlp.4"]
        assert [(g.value, g.label) for g in alpha.guides] == [(2.0, "α=2")]
        traps = [(m.step, m.label) for m in alpha.markers if m.label.startswith("×")]
        assert traps == [(240, "×1"), (11491, "×2"), (24886, "×7"), (53894, "×4")]
        assert {"t1", "t2"} <= {m.label for m in alpha.markers}

        energy = charts["slot-4"]
        assert energy.log_y and [c.label for c in energy.curves] == ["energy", "low-freq"]
        assert not any(m.label.startswith("×") for m in charts["slot-1"].markers)


async def test_at_80x24_the_charts_come_two_at_a_time_and_c_pages(recorded_lab):
    lab, run_id = recorded_lab
    app = GrokApp(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await monitor_of(pilot, run_id)

        def page() -> list[str]:
            return [bare(chart.title) for chart in screen.charts() if chart.display]

        assert len(page()) == 2 and page()[1].startswith("alpha_mean")  # the slot in use
        await pilot.press("c")
        assert page() == DEFAULT_TITLES[:2]
        await pilot.press("c", "c")
        assert page() == DEFAULT_TITLES[2:4]  # α and spectral energy side by side
        await wait_for(pilot, lambda: drawn(screen), "the page drawn")
        assert all(chart.size.width >= 38 for chart in screen.charts() if chart.display)


# --- pins, remembered per lab --------------------------------------------------------------


async def test_a_pinned_metric_stays_in_its_slot_in_a_new_app_until_unpinned(recorded_lab):
    lab, run_id = recorded_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_of(pilot, run_id)
        await pilot.press("c")  # slot 1, accuracy
        assert screen.slot == 0 and screen.charts()[0].title.startswith("▸ ")
        await pilot.press("m", "m", "p")
        pinned = screen.charts()[0].curves[0].label
        assert pinned not in ("train", "test") and "· pinned" in screen.charts()[0].title
    assert load_pins(lab.root) == ({0: SlotContent("metric", pinned)}, None)

    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_of(pilot, run_id)
        first = screen.charts()[0]
        assert [c.label for c in first.curves] == [pinned] and "· pinned" in first.title
        assert titles(screen)[1:5] == DEFAULT_TITLES[1:]
        await pilot.press("c", "u")  # slot 6 is in use at first; c moves to slot 1
        assert titles(screen)[0] == "accuracy"
    assert load_pins(lab.root) == ({}, None)

    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_of(pilot, run_id)
        assert titles(screen)[:5] == DEFAULT_TITLES


async def test_a_chart_pinned_into_another_slot_shows_there_with_its_guides(recorded_lab):
    lab, run_id = recorded_lab
    save_pins(lab.root, {5: SlotContent("chart", "alpha")})
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_of(pilot, run_id)
        last = screen.charts()[5]
        assert bare(last.title) == DEFAULT_TITLES[2] and last.guides
        assert [c.label for c in last.curves] == ["mlp.0", "mlp.2", "mlp.4"]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'{"version": 99, "pins": {}}',
        b'{"version": 1, "pins": {"9": {"metric": "loss"}}}',
        b'{"version": 1, "pins": {"1": {"metric": ""}}}',
        b'{"version": 1, "pins": {"1": {"chart": "no such chart"}}}',
        b'{"version": 1, "pins": {"1": "loss"}}',
        b"\xff\xfe",
    ],
)
async def test_a_damaged_layout_file_gives_the_default_slots_and_a_warning(recorded_lab, content):
    lab, run_id = recorded_lab
    (lab.root / LAYOUT_FILE).write_bytes(content)
    sent: list = []
    app = GrokApp(lab)
    async with app.run_test(size=SIZE, message_hook=sent.append) as pilot:
        screen = await monitor_of(pilot, run_id)
        assert titles(screen)[:5] == DEFAULT_TITLES and not screen.pins
        # The warning is a message in the App's queue: on a busy machine it may not have been
        # handled yet when the charts are drawn.
        await wait_for(
            pilot,
            lambda: any(w.startswith("Monitor layout: default slots") for w in warnings(sent)),
            "the layout warning",
        )
        assert isinstance(app.screen, MonitorScreen)


async def test_a_lab_folder_that_refuses_the_layout_file_is_an_error_notice(recorded_lab):
    lab, run_id = recorded_lab
    (lab.root / LAYOUT_FILE).mkdir()  # os.replace cannot put a file there
    sent: list = []
    app = GrokApp(lab)
    async with app.run_test(size=SIZE, message_hook=sent.append) as pilot:
        screen = await monitor_of(pilot, run_id)
        await pilot.press("p")

        def errors() -> list[str]:
            return [
                m.notification.message
                for m in sent
                if isinstance(m, Notify) and m.notification.severity == "error"
            ]

        await wait_for(pilot, errors, "the error notice")
        assert errors()[0].startswith("Could not save the monitor layout")
        assert not screen.pins and "pinned" not in screen.charts()[5].title


# --- the status line: rate and ETA ---------------------------------------------------------


async def test_a_finished_run_shows_its_training_time_and_no_rate(recorded_lab):
    lab, run_id = recorded_lab
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_of(pilot, run_id)
        status = status_text(screen)
        assert "finished" in status and "trained 0:10:36" in status
        assert "steps/s" not in status and "ETA" not in status


def beat(lab: Lab, run_id: str, pid: int, step: int, heartbeat: float) -> None:
    write_json_atomic(
        lab.run_dir(run_id) / "status.json",
        {
            "status": "running",
            "pid": pid,
            "host": None,
            "device": "cpu",
            "heartbeat": heartbeat,
            "step": step,
            "total": 5000,
            "latest": {},
        },
    )


async def test_a_running_run_shows_the_rate_of_its_heartbeats_and_an_eta(tui_lab, idle_process):
    lab, ids = tui_lab
    run_id = ids["live"]
    start = time.time() + 3600.0  # fresh for the whole test
    beat(lab, run_id, idle_process.pid, 1000, start)
    app = GrokApp(lab)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.state.snapshot.loaded, "the first read of the lab")
        app.post_message(messages.OpenMonitor(run_id))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")
        screen = app.screen
        await wait_for(pilot, lambda: "1000/5000" in status_text(screen), "the first beat")
        assert "– steps/s" in status_text(screen) and "ETA –" in status_text(screen)

        beat(lab, run_id, idle_process.pid, 1500, start + 50.0)  # 10 steps/s
        app.post_message(messages.RefreshLab())
        await wait_for(pilot, lambda: "1500/5000" in status_text(screen), "the second beat")
        await workers_done(app)
        assert " 10 steps/s" in status_text(screen)
        assert "ETA 0:05:50" in status_text(screen)  # 3500 steps at 10 steps/s


# --- the smoothed rate ---------------------------------------------------------------------


def test_the_rate_follows_throughput_not_the_pauses_of_probes():
    """100 steps/s with a 20 s probe pause every minute (66.7 steps/s on average), seen by a
    poll once a second: the rate between two looks swings from 0 to 100, the smoothed one
    stays within 10 steps/s of the average once it has two minutes of history."""
    rate, rates = StepRate(), []
    step, now = 0, 0.0
    for second in range(1, 600):
        step += 0 if second % 60 >= 40 else 100
        now = float(second)
        rate.add(now, step)
        rates.append(rate.rate)
    late = rates[120:]
    assert 200 / 3 - 10 < min(late) and max(late) < 200 / 3 + 10


def test_the_rate_starts_over_when_the_step_goes_back_and_ignores_old_samples():
    rate = StepRate()
    rate.add(10.0, 100)
    assert rate.rate is None  # one sample is no rate
    rate.add(20.0, 200)
    assert rate.rate == pytest.approx(10.0)
    rate.add(20.0, 300)  # no time passed: nothing to learn
    rate.add(15.0, 300)
    assert rate.rate == pytest.approx(10.0)
    rate.add(30.0, 50)  # resumed from an earlier checkpoint
    assert rate.rate is None
    rate.add(40.0, 150)
    assert rate.rate == pytest.approx(10.0)


def test_eta_text():
    assert eta_text(1500, 5000, 10.0) == "0:05:50"
    assert eta_text(0, 100_000, 1.0) == "27:46:40"
    assert eta_text(5000, 5000, 10.0) == "–"
    assert eta_text(10, None, 10.0) == "–" and eta_text(10, 100, None) == "–"


def test_the_layout_file_is_written_whole_and_read_back(tmp_path):
    pins = {0: SlotContent("metric", "stable_rank/mlp.0.weight"), 5: SlotContent("chart", "alpha")}
    save_pins(tmp_path, pins)
    data = json.loads((tmp_path / LAYOUT_FILE).read_text())
    assert data == {
        "version": 1,
        "pins": {"1": {"metric": "stable_rank/mlp.0.weight"}, "6": {"chart": "alpha"}},
    }
    assert load_pins(tmp_path) == (pins, None)
    assert [p.name for p in tmp_path.iterdir()] == [LAYOUT_FILE]  # no temp file left
    assert load_pins(tmp_path / "nowhere") == ({}, None)


def test_slot_titles_fit_a_chart_at_80x24_dropping_the_hint_first():
    assert slot_title("accuracy", "", focused=True, pinned=False) == "▸ accuracy"
    assert slot_title("cos_dist", "  (m: next of 9)", focused=False, pinned=True) == (
        "cos_dist · pinned  (m: next of 9)"
    )
    name = "log_spectral_norm/blocks.0.attn.query.weight"
    assert slot_title(name, "  (m: next of 40)", focused=True, pinned=True) == (
        "▸ …blocks.0.attn.query.weight · pinned"
    )
    long_hint = slot_title(
        "stable_rank/mlp.0.weight", "  (m: next of 34)", focused=True, pinned=True
    )
    assert long_hint == "▸ stable_rank/mlp.0.weight · pinned"
    for title in (long_hint, slot_title(name, "", focused=True, pinned=True)):
        assert len(title) <= TITLE_MAX


def test_the_alpha_chart_draws_each_layer_with_a_value_and_marks_trap_changes():
    series = RunSeries()
    series.extend(
        [
            {
                "step": 0,
                "alpha/pos_embed": float("nan"),
                "alpha/embed.weight": 3.0,
                "alpha/mlp.0.weight": 5.0,
                "alpha_mean": 4.0,
                "traps_total": 0.0,
            },
            {"step": 10, "alpha/embed.weight": 2.5, "traps_total": 1.0},
            {"step": 20, "traps_total": 1.0},
            {"step": 30, "traps_total": 0.5},
            {"step": 40, "traps_total": 0.0},
        ]
    )
    alpha = PANELS["alpha"]
    assert [curve.label for curve in alpha.curves(series)] == ["embed", "mlp.0"]
    assert [(m.step, m.label) for m in trap_markers(series)] == [(10, "×1"), (30, "×0.5")]
    assert trap_markers(RunSeries()) == []
