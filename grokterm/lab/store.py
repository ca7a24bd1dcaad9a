"""The lab log: the one door to ``lablog.json``.

TinyDB holds the records a researcher reads (runs, notes, detected events). Every write
is a read-modify-write of the whole file, done under a cross-process file lock and made
durable with an atomic replace, so a crash at any moment leaves either the old or the
new file, never a torn one. Reads take no lock: the atomic replace already guarantees a
complete snapshot, and a read-only command must not create files in the lab.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import filelock
from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Document

from grokterm.errors import GrokError
from grokterm.lab.records import Event, RunRecord, RunStatus, SweepRecord

RUN_STATUSES = tuple(status.value for status in RunStatus)
NOTE_MAX_CHARS = 10_000
# Tables whose rows are never deleted: a write that would leave fewer of them than the
# file held is refused (it can only come from a bug or a stale read).
_GROW_ONLY_TABLES = ("runs", "notes", "sweeps")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

LOCK_TIMEOUT = 60.0
_NAME_MAX = 40
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_FROZEN_RUN_FIELDS = frozenset({"id", "seq"})
_EVENT_FIELDS = ("step", "kind", "detail", "thresholds")


def data_text(data: dict[str, Any]) -> str:
    """A run record's `data` (what it trained on): its source, then the actual sizes."""
    return f"{data.get('source')}: {data.get('n_train'):,} train / {data.get('n_test'):,} test"


class LabError(GrokError):
    """A lab-log problem, phrased as one line the user can act on."""


class RunNotFound(LabError):
    """No run matches the given id or reference."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- atomic files ------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable. Some filesystems refuse fsync on a directory;
    # the rename is still atomic there, only its durability is up to the OS.
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def with_filename(exc: OSError, path: Path) -> OSError:
    """The same error, naming the file it happened on (a failed write() names none)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes, keep_previous: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file only.

    With ``keep_previous``, the version being replaced stays readable there (a hard link to
    the old file, so it costs no copy).
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), _mode_for(target))
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        if keep_previous is not None:
            _link_previous(target, keep_previous)
        os.replace(tmp_name, target)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(tmp_name)
        raise with_filename(exc, target) from exc
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def _link_previous(target: Path, previous: Path) -> None:
    link = previous.with_name(f".{previous.name}.link.tmp")
    with suppress(FileNotFoundError):
        link.unlink()
    try:
        os.link(target, link)
    except FileNotFoundError:
        return  # the first write: there is no previous version
    except OSError:
        return  # a filesystem without hard links: the write goes on without a previous copy
    try:
        os.replace(link, previous)
    except BaseException:
        with suppress(OSError):
            link.unlink()
        raise


def encode_json(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON; text that cannot be UTF-8 (lone surrogates) is a LabError."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise LabError("refused: the text is not valid UTF-8 (undecodable bytes)") from None


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    # Encode before touching the disk so an unserialisable object leaves no trace.
    write_bytes_atomic(path, encode_json(obj))


def _temp_files_of(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{path.name}.*.tmp"))


# -- TinyDB storage ----------------------------------------------------------------------


def previous_path(path: Path) -> Path:
    """Where the lab log's version before its last write is kept."""
    return path.with_name(f"{path.name}.prev")


class AtomicJSONStorage(Storage):
    """TinyDB storage that never leaves a half-written file, refuses a corrupt one, keeps
    the version before the last write, and never writes fewer runs or notes than it read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._held: dict[str, int] = {}

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        try:
            data = json.loads(raw)
        except ValueError as err:
            self._refuse_corrupt(raw, _describe_decode_error(err))
        if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
            self._refuse_corrupt(raw, "top level is not an object of tables")
        self._held = {name: len(data.get(name, {})) for name in _GROW_ONLY_TABLES}
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        for name, held in self._held.items():
            if len(data.get(name, {})) < held:
                raise LabError(
                    f"refused to write {self.path} with fewer {name} than it held "
                    f"({len(data.get(name, {}))} < {held})"
                )
        write_bytes_atomic(self.path, encode_json(data), keep_previous=previous_path(self.path))
        self._held = {name: len(data.get(name, {})) for name in _GROW_ONLY_TABLES}

    def _refuse_corrupt(self, raw: bytes, why: str) -> NoReturn:
        try:
            backup = f"its bytes were copied to {_backup_corrupt(self.path, raw)}"
        except OSError as err:
            backup = f"no copy of it could be kept: {err.strerror or err}"
        advice = "nothing was changed"
        if previous_path(self.path).exists():
            advice += "; `grokterm repair` restores the version before the last write"
        raise LabError(f"{self.path} is corrupt ({why}); {backup}; {advice}")


def _describe_decode_error(err: ValueError) -> str:
    if isinstance(err, json.JSONDecodeError):
        what = err.msg.removesuffix(" at").lower()
        return f"not valid JSON at line {err.lineno}, column {err.colno}: {what}"
    return "not valid UTF-8"


def clean_note_text(text: str) -> str:
    """A note as stored: trimmed, newlines normalised; refused when empty, huge, not valid
    UTF-8 or carrying control characters (terminal escapes would garble every screen)."""
    if not isinstance(text, str):
        raise LabError(f"a note is text, not {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise LabError("the note is empty")
    if len(text) > NOTE_MAX_CHARS:
        raise LabError(f"the note has {len(text):,} characters; at most {NOTE_MAX_CHARS:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LabError("the note is not valid UTF-8 text") from None
    bad = _CONTROL_CHARS.search(text)
    if bad:
        raise LabError(
            f"the note contains a control character ({bad.group()!r}); "
            "only text, tabs and newlines are kept"
        )
    return text


def _backup_corrupt(path: Path, raw: bytes) -> Path:
    """Copy the corrupt bytes beside ``path``, once per distinct corrupt content."""
    for existing in sorted(path.parent.glob(f"{path.name}.corrupt-*")):
        with suppress(OSError):
            if existing.read_bytes() == raw:
                return existing
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while backup.exists():
        counter += 1
        backup = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    write_bytes_atomic(backup, raw)
    return backup


# -- helpers -----------------------------------------------------------------------------


def sanitize_name(name: str) -> str:
    """A run name reduced to [A-Za-z0-9._-], at most 40 characters, never empty."""
    cleaned = _UNSAFE_NAME_CHARS.sub("-", name).strip("-.")[:_NAME_MAX].strip("-.")
    return cleaned or "run"


def _plain(doc: Document) -> dict[str, Any]:
    return dict(doc)


def _run(doc: Document) -> RunRecord:
    return RunRecord.model_validate(dict(doc))


def _by_id(run_id: str):
    return Query().id == run_id


# -- the lab -----------------------------------------------------------------------------


class Lab:
    """A lab directory: ``lablog.json`` (runs, notes, events) and ``runs/<id>/``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.runs_dir = self.root / "runs"
        self.lablog_path = self.root / "lablog.json"
        self._lock_path = self.root / "lablog.lock"
        self.notes_journal = self.root / "notes.jsonl"

    def __repr__(self) -> str:
        return f"Lab({str(self.root)!r})"

    @property
    def exists(self) -> bool:
        return self.lablog_path.exists()

    # -- sessions ----------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[TinyDB | None]:
        if not self.lablog_path.exists():
            yield None
            return
        db = TinyDB(self.lablog_path, storage=AtomicJSONStorage)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self._lock_path, timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise LabError(
                f"the lab log is locked by another process ({self._lock_path}) "
                f"for over {LOCK_TIMEOUT:.0f} s"
            ) from None
        try:
            self._remove_orphan_temp_files()
            yield
        finally:
            lock.release()

    @contextmanager
    def _writing(self) -> Iterator[TinyDB]:
        # A fresh TinyDB per operation: Table caches the next doc id, so a long-lived
        # instance would reuse ids that another process has taken meanwhile.
        with self._locked():
            db = TinyDB(self.lablog_path, storage=AtomicJSONStorage)
            try:
                yield db
            finally:
                db.close()

    def _remove_orphan_temp_files(self) -> None:
        # Only a writer holding the lock creates lablog temp files, so under the lock any
        # that exist were left by a process killed mid-write.
        for orphan in _temp_files_of(self.lablog_path):
            with suppress(OSError):
                orphan.unlink()

    def _table_rows(self, name: str) -> list[Document]:
        return self._read_tables(name)[name]

    def _read_tables(self, *names: str) -> dict[str, list[Document]]:
        """These tables' rows from one read of the file (TinyDB reads it per table)."""
        with self._reading() as db:
            data = (db.storage.read() if db is not None else None) or {}
        return {
            name: [Document(row, doc_id=int(key)) for key, row in (data.get(name) or {}).items()]
            for name in names
        }

    def read_log(self) -> LogContents:
        """Runs, events, notes and sweeps from one read of the lab log (the TUI's poller)."""
        tables = self._read_tables("runs", "events", "notes", "sweeps")
        return LogContents(
            runs=_runs_of(tables["runs"]),
            events=_events_of(tables["events"]),
            notes=_notes_of(tables["notes"]),
            sweeps=_sweeps_of(tables["sweeps"]),
        )

    # -- runs --------------------------------------------------------------------------

    def create_run(self, name: str, preset: str | None, config: dict, tags: list[str]) -> RunRecord:
        """Register a queued run, allocate its id and create its directories."""
        with self._writing() as db:
            return self._insert_run(db, name=name, preset=preset, config=config, tags=list(tags))

    def _insert_run(self, db: TinyDB, name: str, **fields: Any) -> RunRecord:
        clean = sanitize_name(name)
        runs = db.table("runs")
        seq = 1 + max((row["seq"] for row in runs.all()), default=0)
        # A directory may survive a lost or replaced lab log: never reuse it.
        while (self.runs_dir / f"{clean}-{seq}").exists():
            seq += 1
        run = RunRecord(id=f"{clean}-{seq}", seq=seq, name=name, created=now_iso(), **fields)
        (self.runs_dir / run.id / "checkpoints").mkdir(parents=True)
        runs.insert(run.to_json())
        return run

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        """Replace the given top-level fields of a run; returns the updated run."""
        _check_run_fields(fields)
        if not self.lablog_path.exists():
            raise self._not_found(run_id)
        with self._writing() as db:
            runs = db.table("runs")
            if not runs.update(fields, _by_id(run_id)):
                raise self._not_found(run_id)
            return _run(runs.get(_by_id(run_id)))

    def restore_run(self, record: RunRecord) -> None:
        """Put back the record of a run whose directory outlived its entry in the log."""
        if self.run_dir(record.id) != self.runs_dir / record.id:
            raise LabError(f"'{record.id}' is not a valid run id")
        with self._writing() as db:
            runs = db.table("runs")
            if runs.contains(_by_id(record.id)):
                raise LabError(f"run {record.id} is already in the lab log")
            runs.insert(record.to_json())

    def update_run_if(
        self, run_id: str, refusal: Callable[[RunRecord], str | None], **fields: Any
    ) -> RunRecord:
        """Update the run only if ``refusal(record)``, called under the lab's lock, returns
        None; otherwise raise its text as a LabError. Two processes can never both pass."""
        _check_run_fields(fields)
        if not self.lablog_path.exists():
            raise self._not_found(run_id)
        with self._writing() as db:
            runs = db.table("runs")
            row = runs.get(_by_id(run_id))
            if row is None:
                raise self._not_found(run_id)
            problem = refusal(_run(row))
            if problem:
                raise LabError(problem)
            runs.update(fields, _by_id(run_id))
            return _run(runs.get(_by_id(run_id)))

    def get_run(self, run_id: str) -> RunRecord:
        with self._reading() as db:
            row = None if db is None else db.table("runs").get(_by_id(run_id))
        if row is None:
            raise self._not_found(run_id)
        return _run(row)

    def list_runs(self) -> list[RunRecord]:
        return _runs_of(self._table_rows("runs"))

    def resolve(self, ref: str) -> str:
        """Turn a user's reference (id, sequence number or id prefix) into a run id."""
        runs = self.list_runs()
        ids = [run.id for run in runs]
        if ref in ids:
            return ref
        if ref.isdigit():
            by_seq = [run.id for run in runs if run.seq == int(ref)]
            if by_seq:
                return by_seq[0]
        matches = [run_id for run_id in ids if run_id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LabError(f"'{ref}' is ambiguous: {', '.join(matches)}")
        raise self._not_found(ref)

    def run_dir(self, run_id: str) -> Path:
        if sanitize_name(run_id) != run_id:
            raise LabError(f"'{run_id}' is not a valid run id")
        return self.runs_dir / run_id

    def _not_found(self, ref: str) -> RunNotFound:
        return RunNotFound(f"no run '{ref}' in {self.root}")

    def _require_run(self, db: TinyDB, run_id: str) -> None:
        if not db.table("runs").contains(_by_id(run_id)):
            raise self._not_found(run_id)

    # -- sweeps ------------------------------------------------------------------------

    def create_sweep(
        self, sweep: dict[str, Any], cells: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> tuple[SweepRecord, list[RunRecord]]:
        """Register a sweep and its cells, queued runs given as (coords, run fields), in
        one write: a sweep is never recorded with only some of its cells."""
        with self._writing() as db:
            table = db.table("sweeps")
            seq = 1 + max((row["seq"] for row in table.all()), default=0)
            sweep_id = f"sweep-{seq}"
            runs = [
                self._insert_run(db, sweep=sweep_id, coords=coords, **fields)
                for coords, fields in cells
            ]
            record = SweepRecord(
                **sweep, id=sweep_id, seq=seq, cells=[run.id for run in runs], created=now_iso()
            )
            table.insert(record.to_json())
        return record, runs

    def update_sweep(self, sweep_id: str, **fields: Any) -> SweepRecord:
        if {"id", "seq", "cells"} & fields.keys():
            raise LabError("a sweep's id, seq and cells cannot be changed")
        with self._writing() as db:
            table = db.table("sweeps")
            if not table.update(fields, _by_id(sweep_id)):
                raise LabError(f"no sweep '{sweep_id}' in {self.root}")
            return SweepRecord.model_validate(table.get(_by_id(sweep_id)))

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        with self._reading() as db:
            row = None if db is None else db.table("sweeps").get(_by_id(sweep_id))
        if row is None:
            raise LabError(f"no sweep '{sweep_id}' in {self.root}")
        return SweepRecord.model_validate(row)

    def list_sweeps(self) -> list[SweepRecord]:
        return _sweeps_of(self._table_rows("sweeps"))

    def resolve_sweep(self, ref: str) -> str:
        """A sweep's id from its id, its number or its name (the newest of that name)."""
        sweeps = self.list_sweeps()
        for sweep in sweeps:
            if ref in (sweep.id, str(sweep.seq)):
                return sweep.id
        named = [sweep.id for sweep in sweeps if sweep.name == ref]
        if named:
            return named[-1]
        known = ", ".join(sweep.id for sweep in sweeps[-5:]) or "none yet"
        raise LabError(f"no sweep '{ref}' in {self.root} (sweeps: {known})")

    # -- notes -------------------------------------------------------------------------

    def add_note(
        self, text: str, run_id: str | None = None, step: int | None = None
    ) -> dict[str, Any]:
        """Add a note on a run (optionally at a step) or on the lab as a whole."""
        text = clean_note_text(text)
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
            raise LabError(f"a note's step is a whole number ≥ 0, not {step!r}")
        if run_id is not None and not self.lablog_path.exists():
            raise self._not_found(run_id)
        with self._writing() as db:
            if run_id is not None:
                self._require_run(db, run_id)
            notes = db.table("notes")
            note_id = 1 + max((row.doc_id for row in notes.all()), default=0)
            note = {"id": note_id, "run": run_id, "step": step, "text": text, "time": now_iso()}
            notes.insert(Document(note, doc_id=note_id))
            self._journal_note(note)
        return note

    def _journal_note(self, note: dict[str, Any]) -> None:
        # A second, append-only copy of every note, so that notes outlive even the loss of
        # the lab log (`grokterm repair` reads it back). Best effort: the note is stored.
        with suppress(OSError), open(self.notes_journal, "ab") as journal:
            journal.write(encode_json(note) + b"\n")
            journal.flush()
            os.fsync(journal.fileno())

    def recover_notes(self) -> int:
        """Put back journalled notes that the lab log lacks; returns how many."""
        try:
            lines = self.notes_journal.read_bytes().splitlines()
        except FileNotFoundError:
            return 0
        journalled = []
        for line in lines:
            with suppress(ValueError):
                note = json.loads(line)
                if isinstance(note, dict) and isinstance(note.get("text"), str):
                    journalled.append(note)
        with self._writing() as db:
            notes = db.table("notes")
            known = {_note_key(row) for row in notes.all()}
            runs = {row["id"] for row in db.table("runs").all()}
            next_id = 1 + max((row.doc_id for row in notes.all()), default=0)
            restored = 0
            for note in journalled:
                if _note_key(note) in known or (note.get("run") and note["run"] not in runs):
                    continue
                known.add(_note_key(note))
                notes.insert(Document({**note, "id": next_id}, doc_id=next_id))
                next_id += 1
                restored += 1
        return restored

    def notes(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Notes in time order: all of them, or those of one run."""
        return _notes_of(self._table_rows("notes"), run_id)

    # -- events ------------------------------------------------------------------------

    def add_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        """Record detected events of a run in one locked write."""
        if not events:
            return
        for event in events:
            _check_event(event)
        if not self.lablog_path.exists():
            raise self._not_found(run_id)
        time = now_iso()
        rows = [Event.model_validate({**e, "run": run_id, "time": time}).to_json() for e in events]
        with self._writing() as db:
            self._require_run(db, run_id)
            db.table("events").insert_multiple(rows)

    def events(self, run_id: str | None = None) -> list[Event]:
        """Events ordered by step, then by the order they were recorded."""
        return _events_of(self._table_rows("events"), run_id)

    def delete_events(self, run_id: str, after_step: int) -> int:
        """Remove a run's events past ``after_step`` (a resume discards them)."""
        if not self.lablog_path.exists():
            return 0
        event = Query()
        with self._writing() as db:
            removed = db.table("events").remove((event.run == run_id) & (event.step > after_step))
        return len(removed)

    # -- repair ------------------------------------------------------------------------

    def repair(self) -> dict[str, Any]:
        """Put back the version of a corrupt lab log from before its last write.

        The corrupt bytes stay in a ``lablog.json.corrupt-*`` copy. Returns what was done:
        ``repaired`` (False when the log reads fine or is missing) and the restored counts.
        """
        if not self.lablog_path.exists():
            return {"repaired": False, "why": f"there is no {self.lablog_path} to repair"}
        with self._locked():
            try:
                AtomicJSONStorage(self.lablog_path).read()
            except LabError as exc:
                problem = str(exc)
            else:
                return {"repaired": False, "why": f"{self.lablog_path} reads fine"}
            previous = previous_path(self.lablog_path)
            try:
                raw = previous.read_bytes()
                tables = json.loads(raw)
                if not isinstance(tables, dict):
                    raise ValueError("top level is not an object of tables")
            except (OSError, ValueError) as exc:
                raise LabError(
                    f"cannot repair: {problem}; and no good earlier version ({previous}: {exc})"
                ) from None
            write_bytes_atomic(self.lablog_path, raw)
        return {
            "repaired": True,
            "from": str(previous),
            "runs": len(tables.get("runs", {})),
            "notes": len(tables.get("notes", {})),
            "events": len(tables.get("events", {})),
            "backups": [str(p) for p in sorted(self.root.glob("lablog.json.corrupt-*"))],
        }


@dataclass(frozen=True)
class LogContents:
    runs: list[RunRecord]
    events: list[Event]
    notes: list[dict[str, Any]]
    sweeps: list[SweepRecord]


def _runs_of(rows: list[Document]) -> list[RunRecord]:
    return sorted((_run(row) for row in rows), key=lambda r: r.seq)


def _sweeps_of(rows: list[Document]) -> list[SweepRecord]:
    return sorted((SweepRecord.model_validate(row) for row in rows), key=lambda r: r.seq)


def _events_of(rows: list[Document], run_id: str | None = None) -> list[Event]:
    rows = [row for row in rows if run_id is None or row["run"] == run_id]
    rows.sort(key=lambda row: (row["step"], row.doc_id))
    return [Event.model_validate(dict(row)) for row in rows]


def _notes_of(rows: list[Document], run_id: str | None = None) -> list[dict[str, Any]]:
    notes = [_plain(row) for row in rows if run_id is None or row["run"] == run_id]
    return sorted(notes, key=lambda n: (n["time"], n["id"]))


def _note_key(note: dict[str, Any]) -> tuple:
    return (note.get("run"), note.get("step"), note.get("text"), note.get("time"))


def _check_run_fields(fields: dict[str, Any]) -> None:
    frozen = _FROZEN_RUN_FIELDS.intersection(fields)
    if frozen:
        raise LabError(f"a run's {', '.join(sorted(frozen))} cannot be changed")
    status = fields.get("status")
    if "status" in fields and status not in RUN_STATUSES:
        raise LabError(f"unknown run status '{status}' (one of: {', '.join(RUN_STATUSES)})")


def _check_event(event: dict[str, Any]) -> None:
    missing = [key for key in _EVENT_FIELDS if key not in event]
    if missing:
        raise LabError(f"event {event!r} lacks {', '.join(missing)}")
