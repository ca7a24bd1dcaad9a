import json
import math
import os
from pathlib import Path

import pytest

from grokterm.lab import MetricStream, read_metrics
from grokterm.lab.stream import (
    ColumnTail,
    StreamTail,
    loss_column_path,
    read_column,
    read_records,
    series,
    truncate_after,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "demo-1" / "metrics.jsonl"


def write_records(path: Path, records: list[dict]) -> None:
    with MetricStream(path) as stream:
        for record in records:
            stream.append(record)


def test_records_are_buffered_until_flush(path: Path) -> None:
    stream = MetricStream(path, flush_interval=3600)
    stream.append({"step": 1, "loss": 2.0})
    assert read_records(path) == []

    stream.flush()
    assert read_records(path) == [{"step": 1, "loss": 2.0}]

    stream.append({"step": 2, "loss": 1.0})
    stream.close()
    stream.close()
    assert stream.closed
    assert [r["step"] for r in read_records(path)] == [1, 2]


def test_zero_interval_flushes_every_record(path: Path) -> None:
    stream = MetricStream(path, flush_interval=0)
    stream.append({"step": 1, "loss": 2.0})
    assert read_records(path) == [{"step": 1, "loss": 2.0}]
    stream.close()


def test_record_without_step_is_refused(path: Path) -> None:
    with MetricStream(path) as stream, pytest.raises(ValueError, match="step"):
        stream.append({"loss": 1.0})


def test_nan_and_infinity_round_trip(path: Path) -> None:
    write_records(path, [{"step": 1, "loss": math.nan, "norm": math.inf, "low": -math.inf}])
    (record,) = read_records(path)
    assert math.isnan(record["loss"])
    assert record["norm"] == math.inf and record["low"] == -math.inf


def test_scalar_objects_with_item_are_written_as_numbers(path: Path) -> None:
    class Scalar:
        def item(self) -> float:
            return 0.5

    write_records(path, [{"step": 1, "acc": Scalar()}])
    assert read_records(path) == [{"step": 1, "acc": 0.5}]


def test_read_metrics_aligns_columns_with_nan(path: Path) -> None:
    write_records(
        path,
        [
            {"step": 0, "train_acc": 0.1},
            {"step": 10, "train_acc": 0.5, "alpha": 3.2},
            {"step": 20, "train_acc": 0.9, "test_acc": None},
        ],
    )
    columns = read_metrics(path)

    assert list(columns) == ["step", "train_acc", "alpha", "test_acc"]
    assert columns["step"] == [0, 10, 20]
    assert columns["train_acc"] == [0.1, 0.5, 0.9]
    assert math.isnan(columns["alpha"][0]) and columns["alpha"][1] == 3.2
    assert math.isnan(columns["alpha"][2])
    assert all(math.isnan(v) for v in columns["test_acc"])
    assert series(columns, "alpha") == ([10], [3.2])
    assert series(columns, "test_acc") == ([], [])
    assert series(columns, "missing") == ([], [])


def test_read_metrics_of_a_missing_stream_is_empty(path: Path) -> None:
    assert read_metrics(path) == {"step": []}


def test_torn_and_corrupt_lines_are_skipped(path: Path) -> None:
    write_records(path, [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    with path.open("ab") as file:
        file.write(b'garbage\n{"step": 3, "lo')

    assert read_metrics(path) == {"step": [1, 2], "loss": [1.0, 0.5]}


def test_writer_reopened_after_a_crash_drops_the_torn_tail(path: Path) -> None:
    write_records(path, [{"step": 1, "loss": 1.0}])
    with path.open("ab") as file:
        file.write(b'{"step": 2, "lo')
    write_records(path, [{"step": 2, "loss": 0.5}])

    assert read_metrics(path) == {"step": [1, 2], "loss": [1.0, 0.5]}


def test_tail_waits_for_a_line_to_be_completed(path: Path) -> None:
    tail = StreamTail(path)
    assert tail.read_new() == [] and not tail.reset

    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    assert tail.read_new() == [{"step": 1, "loss": 1.0}]
    assert tail.read_new() == []

    with path.open("ab") as file:
        file.write(b'ss": 0.5}\nnot json\n{"step": 3, "loss": 0.25}\n')
    assert tail.read_new() == [{"step": 2, "loss": 0.5}, {"step": 3, "loss": 0.25}]
    assert not tail.reset


def test_tail_starts_over_when_the_stream_is_rewritten(path: Path) -> None:
    write_records(path, [{"step": s, "acc": 1.0 / (s + 1)} for s in range(10)])
    tail = StreamTail(path)
    assert len(tail.read_new()) == 10

    assert truncate_after(path, 4) == 5
    assert [r["step"] for r in tail.read_new()] == [0, 1, 2, 3, 4]
    assert tail.reset

    write_records(path, [{"step": 5, "acc": 0.1}])
    assert [r["step"] for r in tail.read_new()] == [5]
    assert not tail.reset


def test_tail_notices_a_replacement_that_is_not_shorter(path: Path) -> None:
    write_records(path, [{"step": 1, "acc": 1.0}])
    tail = StreamTail(path)
    tail.read_new()

    replacement = path.with_name("new.jsonl")
    write_records(replacement, [{"step": 1, "acc": 9.0}, {"step": 2, "acc": 8.0}])
    replacement.replace(path)

    assert [r["acc"] for r in tail.read_new()] == [9.0, 8.0]
    assert tail.reset


def test_truncate_after_keeps_only_earlier_steps(path: Path) -> None:
    write_records(path, [{"step": s, "acc": s / 10} for s in range(0, 100, 10)])
    with path.open("ab") as file:
        file.write(b'{"step": 100, "ac')

    assert truncate_after(path, 50) == 6
    assert read_metrics(path)["step"] == [0, 10, 20, 30, 40, 50]
    assert path.read_bytes().endswith(b"\n")
    assert [p.name for p in path.parent.iterdir()] == ["metrics.jsonl"]
    assert truncate_after(path.with_name("absent.jsonl"), 5) == 0


# --- the per-step loss column ----------------------------------------------------------------


def training_records(first: int, last: int, eval_every: int = 10) -> list[dict]:
    """What the loop writes: a loss every step, probe metrics beside it at eval steps."""
    records = []
    for step in range(first, last + 1):
        record = {"step": step, "loss": 1.0 / (step + 1)}
        if step % eval_every == 0:
            record.update(train_acc=step / 100, test_acc=step / 200)
        records.append(record)
    return records


def test_step_losses_go_to_the_column_and_probe_records_to_json(path: Path) -> None:
    records = [{"step": 0, "train_acc": 0.0}, *training_records(1, 30)]
    write_records(path, records)

    json_steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
    assert json_steps == [0, 10, 20, 30]  # the lines people read
    column = read_column(loss_column_path(path))
    assert len(column) == 31 and math.isnan(column[0])
    assert list(column[1:]) == [1.0 / (step + 1) for step in range(1, 31)]
    assert loss_column_path(path).stat().st_size == 31 * 8
    assert read_records(path) == records  # merged in step order, exact float64


def test_a_non_finite_or_odd_loss_stays_a_json_line(path: Path) -> None:
    records = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": math.nan}, {"step": 3, "loss": None}]
    write_records(path, records)
    back = read_records(path)
    assert [r["step"] for r in back] == [1, 2, 3]
    assert math.isnan(back[1]["loss"]) and back[2]["loss"] is None
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 3]


def test_steps_without_a_loss_are_holes_not_records(path: Path) -> None:
    write_records(path, [{"step": 3, "loss": 3.0}, {"step": 7, "loss": 7.0}])
    assert read_records(path) == [{"step": 3, "loss": 3.0}, {"step": 7, "loss": 7.0}]
    assert len(read_column(loss_column_path(path))) == 8


def test_the_writer_refuses_a_step_already_in_the_column(path: Path) -> None:
    write_records(path, training_records(1, 5))
    with MetricStream(path) as stream, pytest.raises(ValueError, match="already recorded"):
        stream.append({"step": 5, "loss": 9.0})
    assert [r["step"] for r in read_records(path)] == [1, 2, 3, 4, 5]


def test_a_torn_column_value_is_skipped_and_dropped_by_the_next_writer(path: Path) -> None:
    write_records(path, training_records(1, 4))
    with loss_column_path(path).open("ab") as file:
        file.write(b"\x00\x01\x02")  # a crash inside an 8-byte value
    assert [r["step"] for r in read_records(path)] == [1, 2, 3, 4]

    write_records(path, training_records(5, 6))
    assert [r["step"] for r in read_records(path)] == [1, 2, 3, 4, 5, 6]
    assert loss_column_path(path).stat().st_size == 7 * 8


def test_truncate_after_cuts_both_files_with_no_duplicate_or_orphan(path: Path) -> None:
    write_records(path, training_records(1, 50))
    assert truncate_after(path, 25) == 25
    assert len(read_column(loss_column_path(path))) == 26
    write_records(path, training_records(26, 60))  # the resumed run carries on
    assert [r["step"] for r in read_records(path)] == list(range(1, 61))

    assert truncate_after(path, -1) == 0
    assert read_records(path) == [] and loss_column_path(path).stat().st_size == 0


@pytest.mark.parametrize("cut_first", ["column", "json"])
def test_a_crash_between_the_two_truncations_is_mended_by_the_next(path, cut_first) -> None:
    write_records(path, training_records(1, 50))
    if cut_first == "column":  # the order truncate_after uses
        column = loss_column_path(path)
        column.write_bytes(column.read_bytes()[: 21 * 8])
    else:
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= 20]
        path.write_text("".join(line + "\n" for line in kept))
    steps = [r["step"] for r in read_records(path)]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)  # never a step twice

    truncate_after(path, 20)  # the next resume truncates again
    write_records(path, training_records(21, 40))
    records = read_records(path)
    assert [r["step"] for r in records] == list(range(1, 41))
    assert records == training_records(1, 40)


def test_an_old_stream_with_every_loss_in_json_reads_and_resumes(path: Path) -> None:
    old = [{"step": 0, "train_acc": 0.0}, *training_records(1, 30)]
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in old))
    assert read_records(path) == old
    assert read_metrics(path)["loss"][1:] == [r["loss"] for r in old[1:]]

    truncate_after(path, 20)  # a resume of the old run
    write_records(path, training_records(21, 40))

    assert read_records(path) == [old[0], *training_records(1, 40)]
    column = read_column(loss_column_path(path))  # the old losses were carried into it
    assert list(column[1:]) == [1.0 / (step + 1) for step in range(1, 41)]


def test_a_failed_write_leaves_neither_file_half_written(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/full")  # every write to the JSON lines fails with ENOSPC
    stream = MetricStream(path, flush_interval=3600)
    for record in training_records(1, 10):
        stream.append(record)
    with pytest.raises(OSError, match="metrics.jsonl"):
        stream.flush()
    assert loss_column_path(path).stat().st_size == 0  # the column's part was undone
    stream.abandon()


def test_column_tail_reads_new_values_and_starts_over_after_a_truncation(path: Path) -> None:
    tail = ColumnTail(loss_column_path(path))
    assert len(tail.read_new()) == 0 and not tail.reset

    write_records(path, training_records(1, 10))
    assert list(tail.read_new(max_values=4)[1:]) == [1 / 2, 1 / 3, 1 / 4]
    assert tail.steps_read == 4 and tail.steps_on_disk() == 11
    assert len(tail.read_new()) == 7
    with loss_column_path(path).open("ab") as file:
        file.write(b"\x00" * 5)  # half a value: not yet
    assert len(tail.read_new()) == 0

    truncate_after(path, 5)
    values = tail.read_new()
    assert tail.reset and len(values) == 6
    os.unlink(loss_column_path(path))
    assert len(tail.read_new()) == 0 and tail.reset
