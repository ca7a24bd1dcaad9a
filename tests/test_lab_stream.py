import math
from pathlib import Path

import pytest

from grokterm.lab import MetricStream, read_metrics
from grokterm.lab.stream import StreamTail, read_records, series, truncate_after


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
    write_records(path, [{"step": s, "loss": 1.0 / (s + 1)} for s in range(10)])
    tail = StreamTail(path)
    assert len(tail.read_new()) == 10

    assert truncate_after(path, 4) == 5
    assert [r["step"] for r in tail.read_new()] == [0, 1, 2, 3, 4]
    assert tail.reset

    write_records(path, [{"step": 5, "loss": 0.1}])
    assert [r["step"] for r in tail.read_new()] == [5]
    assert not tail.reset


def test_tail_notices_a_replacement_that_is_not_shorter(path: Path) -> None:
    write_records(path, [{"step": 1, "loss": 1.0}])
    tail = StreamTail(path)
    tail.read_new()

    replacement = path.with_name("new.jsonl")
    write_records(replacement, [{"step": 1, "loss": 9.0}, {"step": 2, "loss": 8.0}])
    replacement.replace(path)

    assert [r["loss"] for r in tail.read_new()] == [9.0, 8.0]
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
