"""The config fields that tell a lab's runs apart, as columns of the runs table, and the
runs filter, whose `field=value` expressions test those fields. Textual-free.

A run's config is fixed when the run is created, so the differing fields, their headers and
each run's cell texts are worked out once per change of the set of runs, not per refresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from grokterm.lab.comparison import differing_fields
from grokterm.lab.records import RunView
from grokterm.schema import FieldSpec, format_value, leaf_fields, parse_text

# The run's name is its id's stem, its description prose, its tags a column of their own.
# The seed stays: replicates that differ only in their seed are told apart by it.
IDENTITY_FIELDS = frozenset({"name", "description", "tags"})
# The knobs of grokking first, so that a cap on the columns keeps them; after these come
# the top-level fields (seed, device, dtype), then probes and detector, in schema order.
SECTION_ORDER = ("optim", "task", "model", "schedule")
EMPTY = "–"


@cache
def _schema() -> dict[str, tuple[int, FieldSpec]]:
    """dotted name -> (place in the schema, spec), for every leaf of every kind."""
    return {spec.dotted: (place, spec) for place, spec in enumerate(leaf_fields())}


def spec_of(field: str) -> FieldSpec:
    """The schema's spec of a field; a field it lacks (an older lab's) is read as TOML."""
    known = _schema().get(field)
    return known[1] if known else FieldSpec(tuple(field.split(".")), "toml")


def field_rank(field: str) -> tuple[int, int, str]:
    section = field.split(".", 1)[0] if "." in field else ""
    section_rank = SECTION_ORDER.index(section) if section in SECTION_ORDER else len(SECTION_ORDER)
    place = _schema().get(field, (len(_schema()), None))[0]
    return (section_rank, place, field)


def short_headers(fields: list[str]) -> dict[str, str]:
    """Each field's last name (weight_decay), with as many parents as make it unique among
    `fields` (task.kind and model.kind)."""
    headers = {}
    for field in fields:
        parts = field.split(".")
        for size in range(1, len(parts) + 1):
            header = ".".join(parts[-size:])
            if sum(1 for other in fields if named(other, header)) == 1:
                break
        headers[field] = header
    return headers


def named(field: str, name: str) -> bool:
    """Does `name` name the dotted `field`: the whole of it or its last parts?"""
    return field == name or field.endswith("." + name)


def cell_text(field: str, value: Any) -> str:
    if value is None:
        return EMPTY
    return format_value(spec_of(field), value) or EMPTY


@cache
def _wanted(field: str, text: str) -> Any:
    return parse_text(spec_of(field), text)


def value_matches(field: str, value: Any, text: str) -> bool:
    """Does the value equal what `text` stands for in this field (weight_decay=1 is 1.0)?"""
    if value is None:
        return text.strip().lower() in ("", EMPTY, "none")
    if _wanted(field, text) == value:
        return True
    return cell_text(field, value).lower() == text.strip().lower()


class ConfigColumns:
    """The config fields whose values differ across the runs, most telling first, with
    their headers; each run's values (for sorting and filtering) and cell texts."""

    def __init__(self) -> None:
        self.run_ids: frozenset[str] = frozenset()
        self.fields: list[str] = []
        self.headers: dict[str, str] = {}
        self.all_fields: frozenset[str] = frozenset()
        self._flats: dict[str, dict[str, Any]] = {}
        self._cells: dict[str, dict[str, str]] = {}
        self._named: dict[str, list[str]] = {}

    def update(self, views: Iterable[RunView]) -> bool:
        """Work the fields out again when the set of runs changed; True when it did."""
        views = list(views)
        run_ids = frozenset(view.id for view in views)
        if run_ids == self.run_ids:
            return False
        self._flats = {view.id: self._flats.get(view.id) or flat_config(view) for view in views}
        flats = list(self._flats.values())
        self.fields = sorted(differing_fields(flats), key=field_rank)
        self.headers = short_headers(self.fields)
        self.all_fields = frozenset().union(*flats)
        self.run_ids = run_ids
        self._cells.clear()
        self._named.clear()
        return True

    def value(self, run_id: str, field: str) -> Any:
        return self._flats.get(run_id, {}).get(field)

    def cells(self, run_id: str, fields: list[str]) -> list[str]:
        texts = self._cells.get(run_id)
        if texts is None:
            flat = self._flats.get(run_id, {})
            texts = {field: cell_text(field, flat.get(field)) for field in self.fields}
            self._cells[run_id] = texts
        return [texts.get(field, EMPTY) for field in fields]

    def fields_named(self, name: str) -> list[str]:
        """The fields of any run that `name` names (kind names task.kind, model.kind, ...)."""
        if name not in self._named:
            self._named[name] = sorted(f for f in self.all_fields if named(f, name))
        return self._named[name]

    def test(self, run_id: str, name: str, text: str) -> bool:
        flat = self._flats.get(run_id, {})
        return any(
            field in flat and value_matches(field, flat[field], text)
            for field in self.fields_named(name)
        )


def flat_config(view: RunView) -> dict[str, Any]:
    return {k: v for k, v in view.flat_config().items() if k not in IDENTITY_FIELDS}


_EQUALS = re.compile(r"\s*=\s*")


@dataclass(frozen=True)
class RunFilter:
    """What the runs filter box says: words that must all appear in a run's row (its id,
    preset, status, outcome, tags, ...), and `name=value` tests of a column or config field."""

    words: tuple[str, ...] = ()
    tests: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> RunFilter:
        words, tests = [], []
        for part in _EQUALS.sub("=", text.strip()).split():
            name, equals, value = part.partition("=")
            if equals and name:
                tests.append((name, value))
            else:
                words.append(part.lower())
        return cls(tuple(words), tuple(tests))

    def __bool__(self) -> bool:
        return bool(self.words or self.tests)

    def matches(self, run_id: str, values: Mapping[str, Any], config: ConfigColumns) -> bool:
        """`values` are the run's row values by column key."""
        if self.words:
            haystack = " ".join(str(v) for v in values.values()).lower()
            if not all(word in haystack for word in self.words):
                return False
        return all(
            str(values[name]).lower() == text.lower()
            if name in values
            else config.test(run_id, name, text)
            for name, text in self.tests
        )

    def unknown(self, columns: Iterable[str], config: ConfigColumns) -> list[str]:
        """The names of tests that name neither a column nor any run's config field."""
        known = set(columns)
        return [n for n, _ in self.tests if n not in known and not config.fields_named(n)]
