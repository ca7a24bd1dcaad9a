"""What the Experiment model says about its fields, one text codec for their values, and
where pydantic's errors belong (DESIGN §1.5: config is data).

Textual-free: `--set`, the launch form and sweep axes all read fields through here, and
nothing lists the Experiment's fields by hand: everything walks ``model_fields``, and the
tags of a discriminated union (``task``, ``model``) come from its members' discriminators.

The text of a value: numbers as Python or TOML write them, ``true``/``false``, strings bare
or TOML-quoted, lists as a TOML array (``[256, 256]``) or a comma list (``256, 256``), an
empty optional field as none. Parsing never raises: text that does not parse is returned
unchanged, so pydantic names the field and says why.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import tomli_w
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from grokterm.config import Experiment
from grokterm.errors import ConfigError

Path = tuple[str, ...]
Location = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

# -- what the model says ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One editable value of the model.

    kind: ``int``, ``float``, ``str``, ``bool``, ``choice`` (a Literal), ``list`` (a list or
    tuple; ``item`` is the kind of its items) or ``toml`` (anything else, typed as TOML).
    """

    path: Path
    kind: str
    description: str = ""
    choices: tuple[Any, ...] = ()
    item: str = ""
    optional: bool = False
    default: Any = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class ModelSpec:
    """A nested model: a section of its own fields."""

    path: Path
    model: type[BaseModel]
    description: str = ""


@dataclass(frozen=True)
class UnionSpec:
    """A discriminated union of models: a kind field plus the chosen kind's fields."""

    path: Path
    discriminator: str
    members: dict[Any, type[BaseModel]] = field(default_factory=dict)
    description: str = ""
    default: Any = None  # the tag of the default kind

    @property
    def kind_field(self) -> FieldSpec:
        return FieldSpec(
            (*self.path, self.discriminator),
            "choice",
            self.description or "changing it resets this section to its defaults",
            choices=tuple(self.members),
            default=self.default,
        )

    def member_specs(self, tag: Any) -> Iterator[tuple[str, Spec]]:
        """The fields of one kind, without the discriminator (that is ``kind_field``)."""
        for name, spec in model_specs(self.members[tag], self.path):
            if name != self.discriminator:
                yield name, spec

    def tag_of(self, values: Any) -> Any:
        """The kind ``values`` chose (a section without one has the default), or None."""
        chosen = values if isinstance(values, Mapping) else {}
        tag = chosen.get(self.discriminator, self.default)
        return tag if isinstance(tag, Hashable) and tag in self.members else None


Spec = FieldSpec | ModelSpec | UnionSpec


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _scalar_kind(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    for python_type, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if annotation is python_type:
            return kind
    return "toml"


def _union_tag(model: type[BaseModel], discriminator: str) -> Any:
    info = model.model_fields[discriminator]
    literal = _unwrap(info.annotation)
    if get_origin(literal) is Literal:
        return get_args(literal)[0]
    return info.default


def _bounds(metadata: list[Any]) -> str:
    """'> 0, ≤ 10' from a field's annotated-types constraints."""
    signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    parts = []
    for item in metadata:
        for attr, sign in signs.items():
            bound = getattr(item, attr, None)
            if isinstance(item, annotated_types.BaseMetadata) and bound is not None:
                parts.append(f"{sign} {bound}")
    return ", ".join(parts)


def _default(info: FieldInfo | None) -> Any:
    if info is None or info.is_required():
        return None
    return info.get_default(call_default_factory=True)


def describe(annotation: Any, info: FieldInfo | None, path: Path) -> Spec:
    """What a model field is, from its annotation and FieldInfo."""
    description = (info.description if info else None) or ""
    bounds = _bounds(info.metadata) if info else ""
    if bounds:
        description = f"{description} ({bounds})" if description else f"({bounds})"
    default = _default(info)
    annotation = _unwrap(annotation)
    optional = False
    if _is_union(annotation):
        args = [_unwrap(arg) for arg in get_args(annotation) if arg is not type(None)]
        optional = len(args) < len(get_args(annotation))
        discriminator = info.discriminator if info else None
        if not optional and isinstance(discriminator, str) and all(_is_model(arg) for arg in args):
            members = {_union_tag(arg, discriminator): arg for arg in args}
            tag = getattr(default, discriminator, None)
            return UnionSpec(path, discriminator, members, description, tag)
        if len(args) != 1:
            return FieldSpec(path, "toml", description, optional=optional, default=default)
        annotation = args[0]
    if _is_model(annotation):
        return ModelSpec(path, annotation, description)
    origin = get_origin(annotation)
    if origin is Literal:
        return FieldSpec(path, "choice", description, get_args(annotation), default=default)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        item_kinds = {_scalar_kind(arg) for arg in get_args(annotation) if arg is not Ellipsis}
        item = item_kinds.pop() if len(item_kinds) == 1 else "toml"
        return FieldSpec(path, "list", description, item=item, optional=optional, default=default)
    kind = _scalar_kind(annotation)
    return FieldSpec(path, kind, description, optional=optional, default=default)


def model_specs(model: type[BaseModel], path: Path = ()) -> Iterator[tuple[str, Spec]]:
    for name, info in model.model_fields.items():
        yield name, describe(info.annotation, info, (*path, name))


def model_doc(model: type[BaseModel]) -> str:
    """The model's own docstring (not an inherited one), first paragraph, one line."""
    doc = model.__dict__.get("__doc__") or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The defaults of every field that has one (nested models as dicts)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            values[name] = plain(info.get_default(call_default_factory=True))
    return values


def plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


def leaf_fields(model: type[BaseModel] = Experiment, path: Path = ()) -> Iterator[FieldSpec]:
    """Every leaf field, those of every kind of a union included (after its kind field)."""
    for _, spec in model_specs(model, path):
        yield from _leaves(spec)


def _leaves(spec: Spec) -> Iterator[FieldSpec]:
    if isinstance(spec, FieldSpec):
        yield spec
    elif isinstance(spec, ModelSpec):
        yield from leaf_fields(spec.model, spec.path)
    else:
        yield spec.kind_field
        for tag in spec.members:
            for _, member in spec.member_specs(tag):
                yield from _leaves(member)


def find_spec(
    path: Sequence[str], data: Mapping[str, Any] | None = None, model: type[BaseModel] = Experiment
) -> Spec | None:
    """What is at ``path``, for the union kinds chosen in ``data``; None if nothing is."""
    spec: Spec = ModelSpec((), model)
    values: Any = data or {}
    for name in path:
        children = _children(spec, values)
        if name not in children:
            return None
        spec = children[name]
        values = values.get(name) if isinstance(values, Mapping) else None
    return spec


def _children(spec: Spec, values: Any) -> dict[str, Spec]:
    if isinstance(spec, ModelSpec):
        return dict(model_specs(spec.model, spec.path))
    if isinstance(spec, UnionSpec):
        tag = spec.tag_of(values)
        members = dict(spec.member_specs(tag)) if tag is not None else {}
        return {spec.discriminator: spec.kind_field, **members}
    return {}


def find_field(
    path: Sequence[str], data: Mapping[str, Any] | None = None, model: type[BaseModel] = Experiment
) -> FieldSpec | None:
    spec = find_spec(path, data, model)
    return spec if isinstance(spec, FieldSpec) else None


def is_discriminator(path: Sequence[str], model: type[BaseModel] = Experiment) -> bool:
    """Is ``path`` the kind of a union (``task.kind``), whose change starts the section afresh?"""
    union = find_spec(path[:-1], None, model) if path else None
    return isinstance(union, UnionSpec) and union.discriminator == path[-1]


# -- text <-> values ----------------------------------------------------------------------

_UNREAD = object()
_BARE_WORD = re.compile(r"^[^\s,\[\]\"']+$")


def _read_toml(text: str) -> Any:
    """The TOML value ``text`` spells, or _UNREAD."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
        return _UNREAD


def _toml_scalar(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    try:
        return tomli_w.dumps({"v": value}).partition("=")[2].strip()
    except (TypeError, ValueError):
        return str(value)


def format_value(spec: FieldSpec, value: Any) -> str:
    """The text of a field's value; ``parse_text`` reads it back to the same value."""
    if value is None:
        return ""
    if spec.kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return _toml_scalar(float(value))
    if spec.kind == "int":
        return str(value)
    if spec.kind in ("str", "choice") and isinstance(value, str):
        return value if parse_text(spec, value) == value else _toml_scalar(value)
    if spec.kind == "list" and isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if spec.item == "str" and all(isinstance(v, str) and _BARE_WORD.match(v) for v in items):
            return ", ".join(items)
        return "[" + ", ".join(_toml_scalar(v) for v in items) + "]"
    return _toml_scalar(value)


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value ``text`` stands for in this field; unparseable text is returned unchanged."""
    if spec.optional and not text.strip():
        return None
    if spec.kind == "list":
        return _parse_list(spec.item, text)
    if spec.kind == "choice":
        return _parse_choice(spec.choices, text)
    return _parse_scalar(spec.kind, text)


def parse_field(
    path: Sequence[str],
    text: str,
    data: Mapping[str, Any] | None = None,
    model: type[BaseModel] = Experiment,
) -> Any:
    """The value ``text`` gives the field at ``path`` (for the kinds in ``data``). A path the
    model lacks gets TOML or a bare word, so that pydantic names it as an unknown field."""
    spec = find_field(path, data, model) or FieldSpec(tuple(path), "toml")
    return parse_text(spec, text)


def parse_values(spec: FieldSpec, text: str) -> list[Any]:
    """The values of a sweep axis: ``1e-4, 3e-4``; a list field's values each in brackets,
    ``[64], [128, 128]``. Raises ConfigError when a value is missing."""
    parts = _split_top_level(text)
    if any(not part for part in parts):
        example = "[64], [128, 128]" if spec.kind == "list" else "1e-4, 3e-4"
        raise ConfigError(f"{spec.dotted}: expected values separated by commas, e.g. {example}")
    return [parse_text(spec, part) for part in parts]


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets, braces and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for at, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:at])
            start = at + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def _parse_scalar(kind: str, text: str) -> Any:
    stripped = text.strip()
    if kind == "str":
        return _parse_string(text)
    if kind in ("int", "float"):
        with suppress(ValueError):
            return int(stripped) if kind == "int" else float(stripped)
        value = _read_toml(stripped)  # 3.0 for an int, 0x10: pydantic judges them
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return value if is_number else text
    value = _read_toml(stripped)
    return text if value is _UNREAD else value


def _parse_string(text: str) -> str:
    """A TOML-quoted string is its content (``"two words"``); any other text is itself."""
    stripped = text.strip()
    if stripped[:1] in ("'", '"'):
        value = _read_toml(stripped)
        if isinstance(value, str):
            return value
    return text


def _parse_choice(choices: tuple[Any, ...], text: str) -> Any:
    stripped = text.strip()
    for choice in choices:
        if stripped == str(choice):
            return choice
    value = _read_toml(stripped)
    return text if value is _UNREAD else value


def _parse_list(item: str, text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        value = _read_toml(stripped)
        if isinstance(value, list):
            return value
        if value is not _UNREAD or not stripped.endswith("]"):
            return text
        stripped = stripped[1:-1]  # [a, b] with bare words: read it as a comma list
    parts = [part.strip() for part in stripped.split(",")]
    if parts and not parts[-1]:
        parts.pop()  # a trailing comma
    if item == "str":
        return [part.strip("\"'") for part in parts]
    return [_parse_scalar(item or "toml", part) for part in parts]


# -- where errors belong ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One validation error: where (pydantic's location without union tags) and why."""

    location: Location
    message: str

    @property
    def dotted(self) -> str:
        return ".".join(map(str, self.location))


def error_location(loc: Sequence[str | int], model: type[BaseModel] = Experiment) -> Location:
    """``('task', 'toy_addition', 'n')`` -> ``('task', 'n')``: a union's tag is no field."""
    clean: list[str | int] = []
    spec: Spec | None = ModelSpec((), model)
    for part in loc:
        if isinstance(spec, UnionSpec) and part in spec.members:
            spec = ModelSpec(spec.path, spec.members[part])
            continue
        clean.append(part)
        spec = _child(spec, part)
    return tuple(clean)


def _child(spec: Spec | None, name: str | int) -> Spec | None:
    if not isinstance(spec, ModelSpec) or name not in spec.model.model_fields:
        return None
    info = spec.model.model_fields[str(name)]
    return describe(info.annotation, info, (*spec.path, str(name)))


def error_message(error: Mapping[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")


def field_errors(exc: ValidationError, model: type[BaseModel] = Experiment) -> list[FieldError]:
    return [FieldError(error_location(e["loc"], model), error_message(e)) for e in exc.errors()]


def validate(model: type[M], data: Any) -> tuple[M | None, list[FieldError]]:
    """The validated model, or None and the errors, each naming its field."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, field_errors(exc, model)
    except Exception as exc:  # noqa: BLE001 - a validator raised what pydantic won't wrap
        return None, [FieldError((), f"{type(exc).__name__}: {exc}")]


def summary(errors: Sequence[FieldError], origin: str = "") -> str:
    """The errors on one line: 'origin: field.path: message; …'."""
    parts = [f"{e.dotted}: {e.message}" if e.location else e.message for e in errors]
    text = "; ".join(parts[:3]) + (f" (and {len(parts) - 3} more)" if len(parts) > 3 else "")
    return f"{origin}: {text}" if origin else text


_DOTTED_NAME = re.compile(r"\b[A-Za-z_]\w*(?:\.\w+)+\b")


def place(
    error: FieldError, fields: Collection[Path], sections: Collection[Path]
) -> tuple[Path, str]:
    """Where a form shows ``error`` and the text it shows: on the deepest field or section
    along its location, the rest of the location in the text ('item 2: …'). An error of the
    whole experiment goes on a field its message names ('task.kind digits needs …')."""
    location = error.location
    for size in range(len(location), -1, -1):
        path = tuple(map(str, location[:size]))
        if path in fields or path in sections:
            break
    rest, text = location[size:], error.message
    if rest and isinstance(rest[0], int):
        text = f"item {rest[0] + 1}: {text}"
    elif rest:
        text = f"{'.'.join(map(str, rest))}: {text}"
    if not path:
        for match in _DOTTED_NAME.finditer(text):
            named = tuple(match.group().split("."))
            if named in fields:
                return named, text
    return path, text
