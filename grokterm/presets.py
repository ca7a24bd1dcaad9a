"""Presets (TOML files in experiments/), `--set a.b=v` overrides, config errors naming fields."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from grokterm.config import Experiment


class ConfigError(Exception):
    """A user-facing configuration problem; the message is one line that names the field."""


def presets_dir() -> Path:
    """experiments/ of the checkout, or GROKTERM_PRESETS when set."""
    override = os.environ.get("GROKTERM_PRESETS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "experiments"


def list_presets() -> dict[str, Path]:
    folder = presets_dir()
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def resolve_source(ref: str) -> tuple[str | None, Path]:
    """A preset name or a path to a TOML file -> (preset name or None, path)."""
    presets = list_presets()
    if ref in presets:
        return ref, presets[ref]
    path = Path(ref).expanduser()
    if path.suffix == ".toml" or os.sep in ref:
        if not path.is_file():
            raise ConfigError(f"no such file: {ref}")
        return None, path
    known = ", ".join(presets) or "none found in " + str(presets_dir())
    raise ConfigError(f"unknown preset '{ref}' (presets: {known})")


TOML_MAX_BYTES = 1 << 20  # an experiment is a few hundred bytes; more is not a config


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            raw = file.read(TOML_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > TOML_MAX_BYTES:
        raise ConfigError(f"{path}: larger than {TOML_MAX_BYTES >> 20} MiB; not an experiment")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        return parse_toml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}") from None
    except RecursionError:
        raise ConfigError("malformed TOML: arrays or tables nested too deeply") from None


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """'optim.lr=3e-4' -> (['optim', 'lr'], 0.0003). Values are TOML; bare words are strings."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. optim.lr=3e-4")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:
        raise ConfigError(f"--set {key}: the value is nested too deeply") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Set each FIELD=VALUE. A new `kind` for a section starts that section afresh (the old
    kind's fields would be unknown to the new one), so kinds are applied first."""
    parsed = [(assignment, *parse_override(assignment)) for assignment in assignments]
    parsed.sort(key=lambda item: item[1][-1] != "kind")
    for assignment, path, value in parsed:
        if path[-1] == "kind" and len(path) > 1:
            section = _section(data, path[:-1], assignment)
            if section.get("kind") != value:
                section.clear()
        node = _section(data, path[:-1], assignment)
        node[path[-1]] = value
    return data


def _section(data: dict[str, Any], path: list[str], assignment: str) -> dict[str, Any]:
    node = data
    for part in path:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part} is not a section")
        node = child
    return node


def format_validation_error(exc: ValidationError, origin: str = "") -> str:
    """The first pydantic error as one line: 'origin: field.path: message'."""
    parts = []
    for err in exc.errors():
        location = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{location}: {message}" if location else message)
    text = "; ".join(parts[:3]) + (f" (and {len(parts) - 3} more)" if len(parts) > 3 else "")
    return f"{origin}: {text}" if origin else text


def _is_union_tag(part: object) -> bool:
    return part in {"modular", "mnist", "digits", "mlp", "image_mlp", "transformer"}


def build_detector(data: dict[str, Any]):
    from grokterm.config import Detector

    try:
        return Detector.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "detector")) from None


def build_experiment(data: dict[str, Any], origin: str = "") -> Experiment:
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


def load_experiment(ref: str, overrides: list[str] | None = None) -> tuple[str | None, Experiment]:
    """Load a preset or TOML file, apply --set overrides, validate. Raises ConfigError."""
    preset, path = resolve_source(ref)
    data = apply_overrides(read_toml(path), list(overrides or []))
    return preset, build_experiment(data, origin=preset or str(path))


def experiment_to_toml(experiment: Experiment) -> str:
    return tomli_w.dumps(experiment.model_dump(mode="json", exclude_none=True))  # TOML has no null


def save_preset(experiment: Experiment, name: str, header: str = "") -> Path:
    """Write a preset to experiments/<name>.toml atomically."""
    from grokterm.lab.store import write_bytes_atomic

    path = presets_dir() / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    write_bytes_atomic(path, (comment + experiment_to_toml(experiment)).encode())
    return path
