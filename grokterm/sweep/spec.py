"""A sweep's definition: a base experiment, axes over any config fields, replicate seeds, a
budget per cell and a parallel count; expanded into cells, every one validated before
anything is written (DESIGN §11). No torch, no Textual.

An axis is ``FIELD=VALUES``: a comma list read by the field's own codec (``1e-4, 3e-4``;
list fields bracketed, ``[64], [128, 128]``), or a range: ``logspace(-5, -2, 7)`` (powers of
ten, numpy's meaning), ``linspace(0, 1, 5)``, ``range(1, 10, 2)``. In a TOML file the same
texts, or TOML arrays, sit in ``[sweep.grid]``.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from grokterm import schema
from grokterm.config import Experiment
from grokterm.errors import ConfigError
from grokterm.presets import (
    apply_overrides,
    build_experiment,
    read_toml,
    resolve_source,
    split_override,
)

MAX_CELLS = 10_000  # Omnigrok's largest diagram is 588; more is a typo, not a sweep
SEED_FIELD = "seed"
_RANGE = re.compile(r"^\s*(logspace|linspace|range)\s*\((.*)\)\s*$")


class Axis(BaseModel):
    """One swept field and its values, in grid order."""

    model_config = ConfigDict(frozen=True)

    field: str
    values: list[Any]
    replicate: bool = False  # seeds: repeats of a cell, not a coordinate of the diagram


class SweepSpec(BaseModel):
    """What `grokterm sweep` was asked for, as stored in the lab log's `sweeps` table."""

    name: str
    base: str  # a preset name or a path to an experiment TOML
    preset: str | None = None
    overrides: list[str] = []  # --set FIELD=VALUE applied to every cell
    axes: list[Axis]
    parallel: int = Field(1, ge=1, le=64)


class Cell(BaseModel):
    """One point of the grid: its coordinates and the experiment it trains."""

    coords: dict[str, Any]
    experiment: Experiment


def sweeps_dir() -> Path:
    from grokterm.presets import presets_dir

    return presets_dir() / "sweeps"


def parse_axis(assignment: str, base: dict[str, Any]) -> Axis:
    """``optim.lr=logspace(-4, -2, 3)`` -> Axis('optim.lr', [1e-4, 1e-3, 1e-2])."""
    path, text = split_override(assignment)
    dotted = ".".join(path)
    spec = schema.find_field(path, base)
    if spec is None:
        raise ConfigError(f"--grid {dotted}: no such config field")
    values = _range_values(dotted, spec, text) if _RANGE.match(text) else _listed(spec, text)
    return _axis(dotted, values)


def axis_from_toml(dotted: str, raw: Any, base: dict[str, Any]) -> Axis:
    """An axis written in ``[sweep.grid]``: a TOML array, or the text of a range or list."""
    if isinstance(raw, list):
        path = dotted.split(".")
        spec = schema.find_field(path, base)
        if spec is None:
            raise ConfigError(f"grid {dotted}: no such config field")
        return _axis(dotted, raw)
    if isinstance(raw, str):
        return parse_axis(f"{dotted}={raw}", base)
    raise ConfigError(f"grid {dotted}: expected a list of values or a range, got {raw!r}")


def _axis(dotted: str, values: list[Any]) -> Axis:
    if not values:
        raise ConfigError(f"--grid {dotted}: no values")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"--grid {dotted}: a value is repeated ({_show(values)})")
    return Axis(field=dotted, values=values)


def _listed(spec: schema.FieldSpec, text: str) -> list[Any]:
    return schema.parse_values(spec, text)


def _range_values(dotted: str, spec: schema.FieldSpec, text: str) -> list[Any]:
    match = _RANGE.match(text)
    assert match is not None
    kind, inner = match.groups()
    usage = f"--grid {dotted}={kind}(START, STOP, {'STEP' if kind == 'range' else 'COUNT'})"
    try:
        numbers = [float(part) for part in inner.split(",")]
    except ValueError:
        raise ConfigError(f"{usage}: the arguments must be numbers, got ({inner})") from None
    if kind == "range":
        values = _int_range(usage, numbers)
    else:
        values = _spaced(usage, kind, numbers)
    if spec.kind == "int":
        if any(v != round(v) for v in values):
            raise ConfigError(f"{usage}: {dotted} takes whole numbers, the range gives {values}")
        return [int(round(v)) for v in values]
    return values


def _int_range(usage: str, numbers: list[float]) -> list[float]:
    if len(numbers) not in (2, 3) or any(n != int(n) for n in numbers):
        raise ConfigError(f"{usage}: expected two or three whole numbers")
    start, stop, step = (int(n) for n in (*numbers, 1)[:3])
    if step == 0:
        raise ConfigError(f"{usage}: the step must not be 0")
    return [float(v) for v in range(start, stop, step)]


def _spaced(usage: str, kind: str, numbers: list[float]) -> list[float]:
    if len(numbers) != 3 or numbers[2] != int(numbers[2]) or numbers[2] < 1:
        raise ConfigError(f"{usage}: expected START, STOP and a whole COUNT >= 1")
    start, stop, count = numbers[0], numbers[1], int(numbers[2])
    if count == 1:
        points = [start]
    else:
        points = [start + (stop - start) * i / (count - 1) for i in range(count)]
    if kind == "linspace":
        return [_tidy(p) for p in points]
    return [_tidy(10.0**p) for p in points]


def _tidy(value: float) -> float:
    """10 ** -4 is 1.0000000000000001e-4 in floats: keep 12 significant digits."""
    return float(f"{value:.12g}") if math.isfinite(value) else value


def seed_axis(seeds: int, base_seed: int) -> Axis:
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: expected at least 1")
    return Axis(field=SEED_FIELD, values=[base_seed + k for k in range(seeds)], replicate=True)


def expand(spec: SweepSpec, base: dict[str, Any]) -> list[Cell]:
    """Every cell of the grid (the first axis varies slowest), each validated; the first
    invalid cell raises a ConfigError naming it and its field."""
    fields = [axis.field for axis in spec.axes]
    if len(set(fields)) != len(fields):
        raise ConfigError(f"a field is swept twice: {', '.join(fields)}")
    count = math.prod(len(axis.values) for axis in spec.axes)
    if count > MAX_CELLS:
        raise ConfigError(f"{count} cells: more than {MAX_CELLS}; narrow an axis")
    cells = []
    for values in itertools.product(*(axis.values for axis in spec.axes)):
        coords = dict(zip(fields, values, strict=True))
        cells.append(Cell(coords=coords, experiment=_cell_experiment(spec, base, coords)))
    return cells


def _cell_experiment(spec: SweepSpec, base: dict[str, Any], coords: dict[str, Any]) -> Experiment:
    data = _deep_copy(base)
    for dotted, value in coords.items():
        _set(data, dotted.split("."), value)
    where = ", ".join(f"{field}={_show([value])}" for field, value in coords.items())
    try:
        return build_experiment(data, origin=f"{spec.name}: the cell {where}")
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if schema.is_discriminator(path) and node.get(path[-1]) != value:
        node.clear()  # another kind of model or task: the old kind's fields would not fit
    node[path[-1]] = value


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _deep_copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_deep_copy(value) for value in data]
    return data


def _show(values: list[Any]) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


# --- where a sweep comes from: the command line or a TOML file ----------------------------


def base_data(ref: str, overrides: list[str]) -> tuple[str | None, dict[str, Any]]:
    preset, path = resolve_source(ref)
    return preset, apply_overrides(read_toml(path), list(overrides))


def from_command_line(
    base: str,
    grid: list[str],
    overrides: list[str] | None = None,
    seeds: int | None = None,
    steps: int | None = None,
    parallel: int = 1,
    name: str | None = None,
) -> tuple[SweepSpec, list[Cell]]:
    """A sweep as `grokterm sweep BASE --grid ... [--seeds N] [--steps N]` asks for it."""
    overrides = list(overrides or [])
    if steps is not None:
        overrides.append(f"schedule.steps={steps}")
    preset, data = base_data(base, overrides)
    axes = [parse_axis(assignment, data) for assignment in grid]
    if seeds is not None:
        axes.append(seed_axis(seeds, int(data.get(SEED_FIELD, 0))))
    if not axes:
        raise ConfigError("a sweep needs at least one --grid FIELD=VALUES or --seeds N")
    spec = SweepSpec(
        name=name or f"{data.get('name') or preset or 'sweep'}-sweep",
        base=base,
        preset=preset,
        overrides=overrides,
        axes=axes,
        parallel=parallel,
    )
    return spec, expand(spec, data)


def is_sweep_file(ref: str) -> bool:
    """A sweep definition: a file in experiments/sweeps/ or any TOML with a [sweep] table."""
    path = resolve_sweep_path(ref)
    return path is not None


def resolve_sweep_path(ref: str) -> Path | None:
    named = sweeps_dir() / f"{ref}.toml"
    if named.is_file():
        return named
    path = Path(ref).expanduser()
    if path.suffix == ".toml" and path.is_file():
        return path if "sweep" in read_toml(path) else None
    return None


def list_sweep_files() -> dict[str, Path]:
    folder = sweeps_dir()
    return {path.stem: path for path in sorted(folder.glob("*.toml"))} if folder.is_dir() else {}


def from_file(
    path: Path, extra_overrides: list[str] | None = None, parallel: int | None = None
) -> tuple[SweepSpec, list[Cell]]:
    """A sweep TOML: ``[sweep]`` with base, parallel, seeds, steps, ``[sweep.set]`` and
    ``[sweep.grid]``."""
    table = read_toml(path).get("sweep")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [sweep] table")
    known = {"name", "base", "parallel", "seeds", "steps", "set", "grid", "description"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [sweep]: {', '.join(unknown)}")
    if not isinstance(table.get("base"), str):
        raise ConfigError(f'{path}: [sweep] needs base = "PRESET or FILE.toml"')
    overrides = [f"{key}={_toml_text(value)}" for key, value in (table.get("set") or {}).items()]
    overrides += list(extra_overrides or [])
    if table.get("steps") is not None:
        overrides.append(f"schedule.steps={table['steps']}")
    preset, data = base_data(table["base"], overrides)
    grid = table.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: [sweep.grid] must be a table of FIELD = VALUES")
    axes = [axis_from_toml(field, raw, data) for field, raw in grid.items()]
    if table.get("seeds") is not None:
        axes.append(seed_axis(int(table["seeds"]), int(data.get(SEED_FIELD, 0))))
    if not axes:
        raise ConfigError(f"{path}: [sweep.grid] names no axis")
    spec = SweepSpec(
        name=str(table.get("name") or path.stem),
        base=table["base"],
        preset=preset,
        overrides=overrides,
        axes=axes,
        parallel=parallel or int(table.get("parallel") or 1),
    )
    return spec, expand(spec, data)


def _toml_text(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).partition("=")[2].strip()
