"""Per-run metric streams: ``runs/<id>/metrics.jsonl`` and its per-step loss column.

Every record has an int ``"step"`` and float metrics. NaN and infinities are written as
JSON's ``NaN``/``Infinity`` extensions so they round-trip through Python's json module.

The training loss comes every step (10^7 steps would be 420 MB of JSON lines), so it goes
to a binary column beside the stream, ``metrics.loss.f64``: little-endian float64, the
loss of step s at byte 8·s, NaN for a step without one. A step has one slot, so the column
cannot hold a step twice; a chart reads any step range of it without parsing. A record is
also a JSON line unless it is nothing but a finite loss: probe records, forecasts and a
diverged loss are what people read. Streams written before the column existed hold every
step's loss as JSON lines; readers merge both, so old run folders read as before.

Both files are append-only and flushed together at least every second; readers skip a torn
last line or a torn last value (a crash mid-write) and any line that does not decode.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import sys
import time
from array import array
from contextlib import suppress
from pathlib import Path
from typing import Any

from .store import with_filename, write_bytes_atomic

FLUSH_INTERVAL = 1.0
Columns = dict[str, list[float]]
COLUMN_METRIC = "loss"  # the one metric recorded at every step
COLUMN_SUFFIX = ".loss.f64"
VALUE_BYTES = array("d").itemsize


def loss_column_path(stream: str | os.PathLike[str]) -> Path:
    """The per-step loss column beside a stream: ``metrics.jsonl`` -> ``metrics.loss.f64``."""
    return Path(stream).with_suffix(COLUMN_SUFFIX)


def _to_json_scalar(value: Any) -> Any:
    # numpy and torch scalars are not JSON types; both expose .item().
    if hasattr(value, "item"):
        return value.item()
    return float(value)


def _encode(record: dict[str, Any]) -> str:
    return json.dumps(record, allow_nan=True, separators=(",", ":"), default=_to_json_scalar)


def _decode(line: bytes) -> dict[str, Any] | None:
    """A record from one complete line, or None when the line is not a valid record."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    return record


def _complete_lines(data: bytes) -> tuple[list[bytes], int]:
    """The complete lines in ``data`` and how many bytes they span (torn tail excluded)."""
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), end


def _records(lines: list[bytes]) -> list[dict[str, Any]]:
    return [record for line in lines if (record := _decode(line)) is not None]


def _column_value(record: dict[str, Any]) -> float | None:
    """The record's loss as a float, or None when it has no numeric loss."""
    value = record.get(COLUMN_METRIC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _only_a_step_loss(record: dict[str, Any], loss: float | None) -> bool:
    return loss is not None and math.isfinite(loss) and len(record) == 2


def _to_file_order(values: array) -> bytes:
    if sys.byteorder == "big":
        values = array("d", values)
        values.byteswap()
    return values.tobytes()


def _from_file_order(data: bytes) -> array:
    values = array("d")
    values.frombytes(data[: len(data) - len(data) % VALUE_BYTES])  # a torn value is dropped
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _write_all(fd: int, data: bytes, path: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise with_filename(exc, path) from exc


# -- writing -----------------------------------------------------------------------------


class _ColumnAppender:
    """The pending tail of a loss column; the file is opened on the first value written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.on_disk = _drop_torn_value(path) // VALUE_BYTES
        self.pending = array("d")
        self.fd: int | None = None

    def add(self, step: int, value: float) -> None:
        next_step = self.on_disk + len(self.pending)
        if step < next_step:
            raise ValueError(f"step {step} is already recorded in {self.path}")
        self.pending.extend([math.nan] * (step - next_step))
        self.pending.append(value)

    def size(self) -> int:
        return self.on_disk * VALUE_BYTES

    def write_pending(self) -> None:
        if not self.pending:
            return
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _write_all(self.fd, _to_file_order(self.pending), self.path)

    def written(self) -> None:
        self.on_disk += len(self.pending)
        self.pending = array("d")

    def undo(self) -> None:
        if self.fd is not None:
            with suppress(OSError):
                os.ftruncate(self.fd, self.size())

    def close(self) -> None:
        self.pending = array("d")
        if self.fd is not None:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = None


class MetricStream:
    """Append-only writer of one run's metric stream; cheap enough for the training loop.

    Records are buffered and written (with fsync) once ``flush_interval`` seconds have
    passed since the last write, and on ``flush()`` and ``close()``. A write that fails
    (a full disk) is undone to the last complete record in both files and kept pending, so
    a retry writes each record once and neither file holds a torn or repeated record.
    """

    def __init__(
        self, path: str | os.PathLike[str], flush_interval: float = FLUSH_INTERVAL
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        _carry_losses_into_column(self.path)
        # Unbuffered: a failed write must leave no bytes behind in a buffer to retry later.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._column = _ColumnAppender(loss_column_path(self.path))
        self._pending: list[str] = []
        self._last_flush = time.monotonic()

    def append(self, record: dict[str, Any]) -> None:
        if "step" not in record:
            raise ValueError(f"metric record lacks 'step': {record!r}")
        loss = _column_value(record)
        if loss is not None:
            self._column.add(record["step"], loss)
        if not _only_a_step_loss(record, loss):
            self._pending.append(_encode(record) + "\n")
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        if (self._pending or self._column.pending) and self._fd is not None:
            good_size = os.fstat(self._fd).st_size
            try:
                self._column.write_pending()
                _write_all(self._fd, "".join(self._pending).encode("utf-8"), self.path)
            except OSError:
                self._column.undo()
                with suppress(OSError):
                    os.ftruncate(self._fd, good_size)
                raise
            self._column.written()
            self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Close without writing what is pending (after a write failed for good)."""
        self._pending.clear()
        self._column.close()
        if self._fd is not None:
            with suppress(OSError):
                os.close(self._fd)
            self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> MetricStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    # Appending after a torn line would glue the next record onto it and lose both.
    try:
        with open(path, "rb+") as file:
            size = file.seek(0, os.SEEK_END)
            if size == 0:
                return
            file.seek(size - 1)
            if file.read(1) == b"\n":
                return
            file.seek(0)
            _, end = _complete_lines(file.read())
            file.truncate(end)
            file.flush()
            os.fsync(file.fileno())
    except FileNotFoundError:
        return


def _drop_torn_value(path: Path) -> int:
    """Cut a torn last value off a column (appending after it would shift every step);
    returns the column's size in bytes."""
    try:
        with open(path, "rb+") as file:
            size = file.seek(0, os.SEEK_END)
            if size % VALUE_BYTES:
                size -= size % VALUE_BYTES
                file.truncate(size)
                os.fsync(file.fileno())
            return size
    except FileNotFoundError:
        return 0


def _carry_losses_into_column(path: Path) -> None:
    """A stream from before the column (every loss a JSON line) gets its column, so that a
    resumed old run charts its whole loss from one place."""
    column = loss_column_path(path)
    if column.exists() or not path.is_file():  # not a device such as /dev/full, say
        return
    losses = [(r["step"], v) for r in _json_records(path) if (v := _column_value(r)) is not None]
    if not losses:
        return
    values = array("d", [math.nan]) * (max(step for step, _ in losses) + 1)
    for step, value in losses:
        values[step] = value
    write_bytes_atomic(column, _to_file_order(values))


def truncate_after(path: str | os.PathLike[str], step: int) -> int:
    """Keep only records with step <= ``step``; returns how many remain.

    Each file is replaced atomically, the column first; a crash between the two leaves
    later records that the next truncation drops, never a step twice."""
    target = Path(path)
    _truncate_column(loss_column_path(target), step)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return len(read_records(target))
    lines, _ = _complete_lines(data)
    kept = [line for line in lines if (rec := _decode(line)) is not None and rec["step"] <= step]
    write_bytes_atomic(target, b"".join(line + b"\n" for line in kept))
    return len(read_records(target))


def _truncate_column(column: Path, step: int) -> None:
    keep = (step + 1) * VALUE_BYTES
    try:
        size = column.stat().st_size
    except FileNotFoundError:
        return
    if size <= keep and size % VALUE_BYTES == 0:
        return
    with open(column, "rb") as file:
        data = file.read(min(keep, size - size % VALUE_BYTES))
    # A new file rather than ftruncate: a live reader sees the new inode and starts over.
    write_bytes_atomic(column, data)


# -- reading -----------------------------------------------------------------------------


class _FileTail:
    """Where a live reader is in a file; notices when the file was truncated or replaced."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0
        self.reset = False
        self._identity: tuple[int, int] | None = None

    def _read_from_offset(self, limit: int = -1) -> bytes:
        self.reset = False
        try:
            file = open(self.path, "rb")
        except FileNotFoundError:
            self._start_over(None)
            return b""
        with file:
            info = os.fstat(file.fileno())
            identity = (info.st_dev, info.st_ino)
            if identity != self._identity or info.st_size < self.offset:
                self._start_over(identity)
            file.seek(self.offset)
            return file.read(limit)

    def _start_over(self, identity: tuple[int, int] | None) -> None:
        # Only a file we had already read from counts as reset; a first sight does not.
        self.reset = self._identity is not None and self.offset > 0
        self._identity = identity
        self.offset = 0


class StreamTail(_FileTail):
    """Incremental reader of the JSON lines for live views: each ``read_new()`` returns the
    new records.

    After a call that found the file truncated or replaced (a resume rewrites it),
    ``reset`` is True and the records returned are the whole stream from its start.
    """

    def read_new(self) -> list[dict[str, Any]]:
        lines, consumed = _complete_lines(self._read_from_offset())
        self.offset += consumed
        return _records(lines)


class ColumnTail(_FileTail):
    """Incremental reader of a loss column: ``read_new()`` returns the values of the steps
    written since (``steps_read`` is the step after the last one read). ``reset`` as in
    StreamTail: then the values start again at step 0."""

    def read_new(self, max_values: int = 1 << 20) -> array:
        values = _from_file_order(self._read_from_offset(max_values * VALUE_BYTES))
        self.offset += len(values) * VALUE_BYTES
        return values

    @property
    def steps_read(self) -> int:
        return self.offset // VALUE_BYTES

    def steps_on_disk(self) -> int:
        try:
            return self.path.stat().st_size // VALUE_BYTES
        except FileNotFoundError:
            return 0


def read_column(path: str | os.PathLike[str]) -> array:
    """A column's values, index = step (NaN where a step has none); a torn last value is
    skipped."""
    try:
        return _from_file_order(Path(path).read_bytes())
    except FileNotFoundError:
        return array("d")


def _json_records(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines, _ = _complete_lines(data)
    return _records(lines)


def _step(record: dict[str, Any]) -> int:
    return record["step"]


def _merged(records: list[dict[str, Any]], losses: array) -> list[dict[str, Any]]:
    """The JSON records with, in step order, a loss record for each step of the column
    that has no JSON line (a JSON line holds the step's loss itself)."""
    recorded = {record["step"] for record in records}
    only_loss = [
        {"step": step, COLUMN_METRIC: value}
        for step, value in enumerate(losses)
        if value == value and step not in recorded  # NaN: a step without a loss
    ]
    if not only_loss:
        return records
    return list(heapq.merge(records, only_loss, key=_step))


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All valid records of a stream in step order, the JSON lines merged with the loss
    column; a torn last line or value and undecodable lines are skipped."""
    target = Path(path)
    return _merged(_json_records(target), read_column(loss_column_path(target)))


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def columns_from_records(records: list[dict[str, Any]]) -> Columns:
    """Columns by name, ``step`` first; a record lacking a metric gives NaN there."""
    columns: Columns = {"step": []}
    for row, record in enumerate(records):
        for name in record:
            if name not in columns:
                columns[name] = [math.nan] * row
        columns["step"].append(record["step"])
        for name, column in columns.items():
            if name != "step":
                column.append(_as_float(record.get(name)))
    return columns


def read_metrics(path: str | os.PathLike[str]) -> Columns:
    """The stream at ``path`` as aligned columns (empty ``step`` column if none yet)."""
    return columns_from_records(read_records(path))


def series(columns: Columns, name: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric, only where it was recorded and is not NaN."""
    values = columns.get(name)
    if values is None:
        return [], []
    present = [
        (int(step), value)
        for step, value in zip(columns["step"], values, strict=True)
        if not math.isnan(value)
    ]
    return [step for step, _ in present], [value for _, value in present]
