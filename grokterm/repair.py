"""Putting back what a lab lost: run records rebuilt from the runs' own folders.

(A corrupt lab log is restored by Lab.repair, lost notes by Lab.recover_notes, ends the lab
log missed by live.record_ended_runs; `grokterm repair` does all four.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from grokterm.lab import Lab
from grokterm.lab.records import FINAL, RunRecord, RunStatus
from grokterm.live import VANISHED, is_alive, read_status


def unlisted_run_dirs(lab: Lab) -> list[str]:
    """Run directories with an experiment.toml that the lab log does not list."""
    if not lab.runs_dir.is_dir():
        return []
    listed = {record.id for record in lab.list_runs()} if lab.exists else set()
    return sorted(
        path.name
        for path in lab.runs_dir.iterdir()
        if path.name not in listed and (path / "experiment.toml").is_file()
    )


def reregister(lab: Lab, run_id: str) -> RunRecord:
    """Rebuild a lost run record from the run's own files: its config from experiment.toml,
    its state from status.json, its events and phase marks by replaying the detector over
    metrics.jsonl. (Its notes come back from the notes journal: Lab.recover_notes.)"""
    from grokterm.lab.stream import read_records
    from grokterm.phases import replay
    from grokterm.presets import build_experiment, read_toml

    run_dir = lab.run_dir(run_id)
    experiment = build_experiment(read_toml(run_dir / "experiment.toml"), origin=run_id)
    status = read_status(lab, run_id)
    records = read_records(run_dir / "metrics.jsonl")
    last = records[-1]["step"] if records else 0
    if is_alive(RunRecord(id=run_id), status):
        state = RunStatus.RUNNING
    elif status.final:
        state = status.status
    else:
        state = RunStatus.CRASHED
    final_step = last if state == RunStatus.FINISHED else None
    detector, events = replay(records, experiment.detector, final_step=final_step)
    name, _, number = run_id.rpartition("-")
    last_probe = next((r for r in reversed(records) if "test_acc" in r), {})
    summary = {
        **detector.summary(),
        **detector.forecast_summary(),
        **{k: last_probe.get(k) for k in ("train_acc", "test_acc", "train_loss", "test_loss")},
    }
    record = RunRecord(
        id=run_id,
        seq=int(number) if number.isdigit() else 0,
        name=experiment.name or name,
        config=experiment.model_dump(mode="json"),
        tags=list(experiment.tags),
        status=state,
        created=_modified_iso(run_dir / "experiment.toml"),
        ended=_modified_iso(run_dir / "status.json") if state in FINAL else None,
        step=last if status.step is None else status.step,
        summary=summary,
        reason=status.reason or (VANISHED if state == RunStatus.CRASHED else None),
        restored=True,
    )
    lab.restore_run(record)
    lab.add_events(run_id, events)
    return record


def _modified_iso(path: Path) -> str | None:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")
