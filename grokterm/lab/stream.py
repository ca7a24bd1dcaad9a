"""Per-run metric streams: ``runs/<id>/metrics.jsonl``, one JSON record per line.

Every record has an int ``"step"`` and float metrics. NaN and infinities are written as
JSON's ``NaN``/``Infinity`` extensions so they round-trip through Python's json module.
The writer is append-only and flushed at least every second; readers skip a torn last
line (a crash mid-write) and any line that does not decode.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from .store import with_filename, write_bytes_atomic

FLUSH_INTERVAL = 1.0
Columns = dict[str, list[float]]


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


# -- writing -----------------------------------------------------------------------------


class MetricStream:
    """Append-only writer of one run's metric stream; cheap enough for the training loop.

    Records are buffered and written (with fsync) once ``flush_interval`` seconds have
    passed since the last write, and on ``flush()`` and ``close()``. A write that fails
    (a full disk) is undone to the last complete record and kept pending, so a retry
    writes each record once and the file never holds a torn or repeated line.
    """

    def __init__(
        self, path: str | os.PathLike[str], flush_interval: float = FLUSH_INTERVAL
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        # Unbuffered: a failed write must leave no bytes behind in a buffer to retry later.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending: list[str] = []
        self._last_flush = time.monotonic()

    def append(self, record: dict[str, Any]) -> None:
        if "step" not in record:
            raise ValueError(f"metric record lacks 'step': {record!r}")
        self._pending.append(_encode(record) + "\n")
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        if self._pending and self._fd is not None:
            data = memoryview("".join(self._pending).encode("utf-8"))
            good_size = os.fstat(self._fd).st_size
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
            except OSError as exc:
                with suppress(OSError):
                    os.ftruncate(self._fd, good_size)
                raise with_filename(exc, self.path) from exc
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


def truncate_after(path: str | os.PathLike[str], step: int) -> int:
    """Atomically keep only records with step <= ``step``; returns how many remain."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return 0
    lines, _ = _complete_lines(data)
    kept = [line for line in lines if (rec := _decode(line)) is not None and rec["step"] <= step]
    write_bytes_atomic(target, b"".join(line + b"\n" for line in kept))
    return len(kept)


# -- reading -----------------------------------------------------------------------------


class StreamTail:
    """Incremental reader for live views: each ``read_new()`` returns the new records.

    After a call that found the file truncated or replaced (a resume rewrites it),
    ``reset`` is True and the records returned are the whole stream from its start.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0
        self.reset = False
        self._identity: tuple[int, int] | None = None

    def read_new(self) -> list[dict[str, Any]]:
        self.reset = False
        try:
            file = open(self.path, "rb")
        except FileNotFoundError:
            self._start_over(None)
            return []
        with file:
            info = os.fstat(file.fileno())
            identity = (info.st_dev, info.st_ino)
            if identity != self._identity or info.st_size < self.offset:
                self._start_over(identity)
            file.seek(self.offset)
            lines, consumed = _complete_lines(file.read())
        self.offset += consumed
        return _records(lines)

    def _start_over(self, identity: tuple[int, int] | None) -> None:
        # Only a stream we had already read from counts as reset; a first sight does not.
        self.reset = self._identity is not None and self.offset > 0
        self._identity = identity
        self.offset = 0


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All valid records of a stream, skipping a torn last line and undecodable lines."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines, _ = _complete_lines(data)
    return _records(lines)


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
