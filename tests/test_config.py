"""The Experiment model (grokterm/config.py) and presets, --set overrides, config errors."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from grokterm.config import (
    MODULAR_OPS,
    DigitsTask,
    Experiment,
    ImageMLP,
    MnistTask,
    ModularMLP,
    ModularTask,
    TransformerModel,
    is_prime,
    log_spaced_steps,
)
from grokterm.presets import (
    ConfigError,
    apply_overrides,
    build_experiment,
    experiment_to_toml,
    list_presets,
    load_experiment,
    parse_override,
    presets_dir,
    read_toml,
    resolve_source,
    save_preset,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESET_FILES = sorted((REPO_ROOT / "experiments").glob("*.toml"))


def config_error(ref: str, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiment(ref, overrides)
    return str(info.value)


def build_error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        build_experiment(data, origin="test.toml")
    return str(info.value)


@pytest.fixture
def no_preset_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROKTERM_PRESETS", raising=False)


@pytest.fixture
def minimal_toml(tmp_path: Path) -> Path:
    """A file with only generic fields: sections hold their `kind` and nothing kind-specific."""
    path = tmp_path / "minimal.toml"
    path.write_text('name = "minimal"\n\n[task]\nkind = "modular"\n\n[model]\nkind = "mlp"\n')
    return path


# --- presets ---------------------------------------------------------------------------


def test_presets_directory_holds_the_shipped_presets(no_preset_override: None) -> None:
    assert PRESET_FILES, "experiments/ has no TOML files"
    assert presets_dir() == REPO_ROOT / "experiments"
    assert set(list_presets()) == {path.stem for path in PRESET_FILES}
    assert {"modadd-mlp", "nanda", "omnigrok-constrained", "omnigrok-mnist", "power-div"} <= set(
        list_presets()
    )


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_every_preset_loads_by_name_and_by_path(path: Path, no_preset_override: None) -> None:
    preset, exp = load_experiment(path.stem)
    assert preset == path.stem
    assert isinstance(exp, Experiment)
    # the file's values are what the model holds
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for section in ("task", "model", "optim", "schedule"):
        for key, value in raw.get(section, {}).items():
            got = getattr(getattr(exp, section), key)
            if isinstance(got, tuple):
                got = list(got)
            assert got == value, f"{path.name}: {section}.{key}"
    assert exp.seed == raw.get("seed", 0)
    # by path: the same experiment, no preset name
    preset2, exp2 = load_experiment(str(path))
    assert preset2 is None
    assert exp2 == exp
    # eval points are well-formed for every preset
    steps = exp.eval_steps()
    assert steps[0] == 0 and steps[-1] == exp.schedule.steps


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: p.stem)
def test_preset_round_trips_through_toml(path: Path, no_preset_override: None) -> None:
    _, exp = load_experiment(path.stem)
    text = experiment_to_toml(exp)
    again = build_experiment(tomllib.loads(text))
    assert again == exp


def test_save_preset_writes_a_loadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROKTERM_PRESETS", str(tmp_path))
    exp = build_experiment({"name": "mine", "optim": {"lr": 3e-4}, "tags": ["x"]})
    path = save_preset(exp, "mine", header="my preset\nsecond line")
    assert path == tmp_path / "mine.toml"
    assert path.read_text().startswith("# my preset\n# second line\n")
    assert list_presets() == {"mine": path}
    preset, loaded = load_experiment("mine")
    assert preset == "mine" and loaded == exp


def test_unknown_preset_lists_the_known_ones(no_preset_override: None) -> None:
    message = config_error("no-such-preset", [])
    assert "no-such-preset" in message
    assert "modadd-mlp" in message


def test_missing_toml_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    message = config_error(str(missing), [])
    assert "no such file" in message and str(missing) in message
    with pytest.raises(ConfigError):
        resolve_source(str(missing))


# --- --set overrides -------------------------------------------------------------------


def test_parse_override_values_are_toml_and_bare_words_strings() -> None:
    assert parse_override("optim.lr=3e-4") == (["optim", "lr"], 3e-4)
    assert parse_override(" optim.lr = 3e-4 ") == (["optim", "lr"], 3e-4)
    assert parse_override("schedule.steps=100") == (["schedule", "steps"], 100)
    assert parse_override("schedule.steps=1_000") == (["schedule", "steps"], 1000)
    assert parse_override("probes.weight_norm=false") == (["probes", "weight_norm"], False)
    assert parse_override("model.hidden=[64, 32]") == (["model", "hidden"], [64, 32])
    assert parse_override('name="run one"') == (["name"], "run one")
    assert parse_override("name=demo") == (["name"], "demo")
    assert parse_override("task.op=+") == (["task", "op"], "+")
    assert parse_override("task.op=x^2+y^2") == (["task", "op"], "x^2+y^2")
    assert parse_override("description=a=b") == (["description"], "a=b")
    value = parse_override("optim.eps=1e-12")[1]
    assert isinstance(value, float) and math.isclose(value, 1e-12)


@pytest.mark.parametrize("bad", ["optim.lr", "=3", "optim..lr=1", ".lr=1", "optim.=1", ""])
def test_parse_override_rejects_malformed_assignments(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_override(bad)
    assert "FIELD=VALUE" in str(info.value)


def test_overrides_nested_numbers_bools_lists_strings(no_preset_override: None) -> None:
    _, exp = load_experiment(
        "modadd-mlp",
        [
            "optim.weight_decay=0.1",
            "optim.lr=3e-4",
            "schedule.steps=123",
            "schedule.constrain_weight_norm=true",
            "probes.cosine_distance=false",
            "model.hidden=[64, 32]",
            "optim.betas=[0.8, 0.9]",
            "task.op=-",
            "task.p=31",
            "name=my-run",
            'description="two words"',
            "tags=[\"a\", \"b\"]",
            "seed=7",
            "detector.grokking_gap=50",
        ],
    )
    assert exp.optim.weight_decay == 0.1 and exp.optim.lr == 3e-4
    assert exp.schedule.steps == 123 and isinstance(exp.schedule.steps, int)
    assert exp.schedule.constrain_weight_norm is True
    assert exp.probes.cosine_distance is False
    assert exp.model.hidden == [64, 32]
    assert exp.optim.betas == (0.8, 0.9)
    assert exp.task.op == "-" and exp.task.p == 31
    assert exp.name == "my-run" and exp.description == "two words"
    assert exp.tags == ["a", "b"] and exp.seed == 7
    assert exp.detector.grokking_gap == 50
    # untouched fields keep the preset's values
    assert exp.task.train_fraction == 0.4 and exp.model.embed_dim == 128


def test_later_override_wins(no_preset_override: None) -> None:
    _, exp = load_experiment("modadd-mlp", ["optim.lr=1e-2", "optim.lr=2e-2"])
    assert exp.optim.lr == 2e-2


def test_override_creates_a_missing_section(minimal_toml: Path) -> None:
    _, exp = load_experiment(str(minimal_toml), ["detector.memorized=0.9", "probes.weight_norm=0"])
    assert exp.detector.memorized == 0.9
    assert exp.probes.weight_norm is False


def test_override_through_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides({"optim": {"lr": 1.0}}, ["optim.lr.x=1"])
    assert "lr is not a section" in str(info.value)


def test_switching_model_kind_in_a_minimal_file(minimal_toml: Path) -> None:
    _, exp = load_experiment(
        str(minimal_toml), ["model.kind=transformer", "model.d_model=64", "model.n_heads=8"]
    )
    assert isinstance(exp.model, TransformerModel)
    assert (exp.model.d_model, exp.model.n_heads) == (64, 8)

    _, exp = load_experiment(str(minimal_toml), ["task.kind=digits", "model.kind=image_mlp"])
    assert isinstance(exp.task, DigitsTask) and isinstance(exp.model, ImageMLP)


def test_switching_model_kind_of_a_preset(no_preset_override: None) -> None:
    """`--set model.kind=transformer` on the MLP preset must give a transformer (with its
    defaults plus any other overrides), not 'unknown field' errors for the MLP's fields."""
    _, exp = load_experiment("modadd-mlp", ["model.kind=transformer", "model.d_model=64"])
    assert isinstance(exp.model, TransformerModel)
    assert exp.model.d_model == 64
    assert exp.task.p == 97 and exp.optim.lr == 1e-3


def test_switching_task_and_model_kind_of_a_preset(no_preset_override: None) -> None:
    _, exp = load_experiment("modadd-mlp", ["task.kind=digits", "model.kind=image_mlp"])
    assert isinstance(exp.task, DigitsTask)
    assert isinstance(exp.model, ImageMLP)


# --- validation errors name the field ----------------------------------------------------


def test_unknown_field_names_its_path(no_preset_override: None) -> None:
    message = config_error("modadd-mlp", ["optim.bogus=1"])
    assert message.startswith("modadd-mlp: ")
    assert "optim.bogus" in message and "unknown field" in message
    assert "bogus: unknown field" in config_error("modadd-mlp", ["bogus=1"])
    assert "schedule.nope" in build_error({"schedule": {"nope": 1}})


@pytest.mark.parametrize(
    ("assignment", "field"),
    [
        ("schedule.steps=abc", "schedule.steps"),
        ("schedule.steps=1.5", "schedule.steps"),
        ("optim.lr=fast", "optim.lr"),
        ("probes.weight_norm=maybe", "probes.weight_norm"),
        ("model.hidden=['a']", "model.hidden.0"),
        ("model.hidden=[64", "model.hidden"),
        ("optim.betas=[0.9]", "optim.betas.1"),
        ("task.op=%", "task.op"),
        ("model.activation=swish", "model.activation"),
        ("device=tpu", "device"),
        ("name=two words", "name"),
        ("tags=['has space']", "tags"),
    ],
)
def test_ill_typed_values_name_the_field(
    assignment: str, field: str, no_preset_override: None
) -> None:
    message = config_error("modadd-mlp", [assignment])
    assert f"{field}:" in message, message


@pytest.mark.parametrize(
    ("assignment", "field"),
    [
        ("optim.lr=-1e-3", "optim.lr"),
        ("optim.lr=0", "optim.lr"),
        ("optim.lr=nan", "optim.lr"),
        ("optim.lr=100", "optim.lr"),
        ("optim.weight_decay=-0.1", "optim.weight_decay"),
        ("optim.betas=[0.9, 1.0]", "optim.betas.1"),
        ("task.train_fraction=0", "task.train_fraction"),
        ("task.train_fraction=1", "task.train_fraction"),
        ("task.train_fraction=1.5", "task.train_fraction"),
        ("task.train_fraction=-0.2", "task.train_fraction"),
        ("task.p=1", "task.p"),
        ("schedule.steps=0", "schedule.steps"),
        ("schedule.eval_every=0", "schedule.eval_every"),
        ("schedule.batch_size=-1", "schedule.batch_size"),
        ("model.embed_dim=0", "model.embed_dim"),
        ("model.hidden=[64, 0]", "model.hidden.1"),
        ("model.init_scale=0", "model.init_scale"),
        ("seed=-1", "seed"),
        ("detector.memorized=1.5", "detector.memorized"),
        ("detector.grokking_gap=-1", "detector.grokking_gap"),
    ],
)
def test_out_of_range_values_name_the_field(
    assignment: str, field: str, no_preset_override: None
) -> None:
    message = config_error("modadd-mlp", [assignment])
    assert f"{field}:" in message, message


def test_division_needs_a_prime_modulus() -> None:
    message = build_error({"task": {"kind": "modular", "p": 91, "op": "/"}})
    assert message.startswith("test.toml: task")
    assert "p=91" in message and "prime" in message
    # the same modulus is fine for the other operations, and a prime is fine for division
    assert build_experiment({"task": {"kind": "modular", "p": 91, "op": "*"}}).task.p == 91
    assert build_experiment({"task": {"kind": "modular", "p": 89, "op": "/"}}).task.op == "/"


def test_transformer_width_must_divide_into_heads() -> None:
    message = build_error({"model": {"kind": "transformer", "d_model": 130, "n_heads": 4}})
    assert "model" in message and "d_model=130" in message and "n_heads=4" in message
    ok = build_experiment({"model": {"kind": "transformer", "d_model": 132, "n_heads": 4}})
    assert ok.model.d_model == 132


def test_model_must_fit_the_task() -> None:
    message = build_error({"task": {"kind": "modular"}, "model": {"kind": "image_mlp"}})
    assert "model.kind image_mlp" in message
    for model_kind in ("mlp", "transformer"):
        for task_kind in ("digits", "mnist"):
            message = build_error({"task": {"kind": task_kind}, "model": {"kind": model_kind}})
            assert f"task.kind {task_kind}" in message and "image_mlp" in message
    assert isinstance(
        build_experiment({"task": {"kind": "mnist"}, "model": {"kind": "image_mlp"}}).task,
        MnistTask,
    )


def test_section_without_kind_takes_the_default_kind() -> None:
    """`kind` has a default in every section model (Experiment() is modular + mlp), so a
    hand-written `[task]` with only `p = 31` must mean the default modular task."""
    exp = build_experiment({"task": {"p": 31}, "model": {"embed_dim": 16}})
    assert isinstance(exp.task, ModularTask) and exp.task.p == 31
    assert isinstance(exp.model, ModularMLP) and exp.model.embed_dim == 16


def test_unknown_kind_names_the_section() -> None:
    message = build_error({"model": {"kind": "cnn"}})
    assert message.startswith("test.toml: model") and "cnn" in message


def test_many_errors_are_summarised_on_one_line() -> None:
    message = build_error({"optim": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}})
    assert "\n" not in message
    assert message.count("unknown field") == 3 and "(and 2 more)" in message


def test_assignment_is_validated_too() -> None:
    exp = Experiment()
    with pytest.raises(ValueError):
        exp.optim.lr = -1.0


def test_defaults_are_a_valid_modular_experiment() -> None:
    exp = Experiment()
    assert isinstance(exp.task, ModularTask) and isinstance(exp.model, ModularMLP)
    assert exp.task.op in MODULAR_OPS


@pytest.mark.parametrize(("n", "prime"), [(0, False), (1, False), (2, True), (3, True), (4, False),
                                           (91, False), (97, True), (113, True), (121, False)])
def test_is_prime(n: int, prime: bool) -> None:
    assert is_prime(n) is prime


# --- files -------------------------------------------------------------------------------


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[optim\nlr = 1\n')
    message = config_error(str(path), [])
    assert str(path) in message and "malformed TOML" in message
    assert "\n" not in message and "line 2" in message


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert str(path) in str(info.value) and "UTF-8" in str(info.value)
    assert "UTF-8" in config_error(str(path), [])


def test_toml_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nlr = -1\n")
    message = config_error(str(path), [])
    assert message.startswith(f"{path}: optim.lr:")


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(ConfigError):
        read_toml(folder)


# --- eval cadence ------------------------------------------------------------------------


def well_formed(steps: list[int], total: int) -> None:
    assert steps == sorted(set(steps)), "sorted and unique"
    assert steps[0] == 0 and steps[-1] == total
    assert all(isinstance(s, int) and 0 <= s <= total for s in steps)


@pytest.mark.parametrize(
    ("total", "every", "expected"),
    [
        (200, 50, [0, 50, 100, 150, 200]),
        (210, 50, [0, 50, 100, 150, 200, 210]),
        (10, 50, [0, 10]),
        (1, 1, [0, 1]),
        (5, 1, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_eval_steps_every(total: int, every: int, expected: list[int]) -> None:
    exp = build_experiment({"schedule": {"steps": total, "eval": "every", "eval_every": every}})
    steps = exp.eval_steps()
    assert steps == expected
    well_formed(steps, total)


@pytest.mark.parametrize(
    ("total", "points"), [(100_000, 150), (50_000, 400), (1000, 10), (10, 200), (1, 2), (7, 2)]
)
def test_eval_steps_log(total: int, points: int) -> None:
    exp = build_experiment({"schedule": {"steps": total, "eval": "log", "eval_points": points}})
    steps = exp.eval_steps()
    well_formed(steps, total)
    assert len(steps) <= points + 1
    if points >= total + 1:
        assert steps == list(range(total + 1))


def test_eval_steps_log_are_log_spaced() -> None:
    exp = build_experiment({"schedule": {"steps": 100_000, "eval": "log", "eval_points": 150}})
    steps = exp.eval_steps()
    assert len(steps) >= 100  # few duplicates are dropped at the dense start
    assert steps[:4] == [0, 1, 2, 3]
    # the same number of points in each decade above the dense start (up to rounding)
    per_decade = [sum(10**k <= s < 10 ** (k + 1) for s in steps) for k in (2, 3, 4)]
    assert max(per_decade) - min(per_decade) <= 2
    ratios = [b / a for a, b in zip(steps[-20:-1], steps[-19:], strict=True)]
    assert max(ratios) / min(ratios) < 1.01


def test_log_spaced_steps_helper() -> None:
    steps = log_spaced_steps(1000, 50)
    assert min(steps) == 0 and max(steps) == 1000
    assert len(steps) <= 50
