"""Presets (TOML files in experiments/), `--set a.b=v` overrides, config errors naming fields."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import tomli_w
from pydantic import BaseModel

from grokterm import schema
from grokterm.config import Detector, Experiment
from grokterm.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


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


def split_override(assignment: str) -> tuple[list[str], str]:
    """'optim.lr=3e-4' -> (['optim', 'lr'], '3e-4'); ConfigError if it is no FIELD=VALUE."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. optim.lr=3e-4")
    return key.split("."), raw.strip()


def parse_override(assignment: str, data: dict[str, Any] | None = None) -> tuple[list[str], Any]:
    """'optim.lr=3e-4' -> (['optim', 'lr'], 0.0003): the value as the field reads its text
    (schema's codec), for the kinds chosen in ``data``."""
    path, text = split_override(assignment)
    return path, schema.parse_field(path, text, data)


def apply_overrides(data: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Set each FIELD=VALUE. A new kind of a union section starts that section afresh (the
    old kind's fields would be unknown to the new one), so kinds are applied first."""
    kinds_first = sorted(
        assignments, key=lambda a: not schema.is_discriminator(split_override(a)[0])
    )
    for assignment in kinds_first:
        path, value = parse_override(assignment, data)
        node = _section(data, path[:-1], assignment)
        if schema.is_discriminator(path) and node.get(path[-1]) != value:
            node.clear()
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


def build_model(model: type[M], data: dict[str, Any], origin: str = "") -> M:
    """``data`` validated as ``model``; a ConfigError names the fields that are wrong."""
    built, errors = schema.validate(model, data)
    if built is None:
        raise ConfigError(schema.summary(errors, origin))
    return built


def build_detector(data: dict[str, Any]) -> Detector:
    return build_model(Detector, data, "detector")


def build_experiment(data: dict[str, Any], origin: str = "") -> Experiment:
    return build_model(Experiment, data, origin)


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
