"""grokterm/schema.py: field specs of the Experiment, the text codec, where errors belong."""

from __future__ import annotations

from typing import Any

import pytest

from grokterm import schema
from grokterm.config import Detector, Experiment
from grokterm.errors import ConfigError
from grokterm.presets import apply_overrides, build_experiment, load_experiment
from grokterm.schema import FieldError, FieldSpec, UnionSpec

LEAVES = list(schema.leaf_fields())
UNIONS = [spec for _, spec in schema.model_specs(Experiment) if isinstance(spec, UnionSpec)]


def samples(spec: FieldSpec) -> list[Any]:
    """The default and a few awkward values of the field's kind."""
    extra: dict[str, list[Any]] = {
        "int": [0, -3, 10**12],
        "float": [1e-8, 0.1, 3.0, -2.5, 1e300],
        "str": ["", "two words", " padded ", "a=b", '"quoted"', "'single'", "[1, 2]", "123"],
        "bool": [True, False],
        "choice": list(spec.choices),
        "list": [[], [1, 2]] if spec.item != "str" else [[], ["a", "b"], ["has space"]],
    }
    values = [spec.default, *extra.get(spec.kind, [])]
    return values + [None] if spec.optional else values


def same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return list(a) == list(b)
    return a == b and type(a) is type(b)


# --- what the model says ------------------------------------------------------------------


def test_leaf_fields_cover_every_kind_of_every_union() -> None:
    dotted = {spec.dotted for spec in LEAVES}
    assert {"task.kind", "model.kind", "optim.kind", "name", "detector.memorized"} <= dotted
    for union in UNIONS:
        for tag, member in union.members.items():
            for name in member.model_fields:
                assert f"{union.path[0]}.{name}" in dotted, (tag, name)
    assert {"task.n", "task.train_pairs", "model.out_dim"} <= dotted  # the toy kinds too


def test_unions_are_read_from_the_model() -> None:
    by_section = {union.path: union for union in UNIONS}
    assert set(by_section) == {("task",), ("model",)}
    assert set(by_section[("task",)].members) == {"modular", "mnist", "digits", "toy_addition"}
    assert set(by_section[("model",)].members) == {"mlp", "image_mlp", "transformer", "liu_toy"}
    assert by_section[("task",)].default == "modular" and by_section[("model",)].default == "mlp"
    assert schema.is_discriminator(["task", "kind"]) and schema.is_discriminator(["model", "kind"])
    assert not schema.is_discriminator(["optim", "kind"])  # a Literal, not a union
    assert not schema.is_discriminator(["kind"])


def test_field_specs_carry_type_default_description_and_choices() -> None:
    lr = schema.find_field(["optim", "lr"])
    assert lr is not None and lr.kind == "float" and lr.default == 1e-3 and "> 0" in lr.description
    op = schema.find_field(["task", "op"])
    assert op is not None and op.kind == "choice" and "+" in op.choices
    hidden = schema.find_field(["model", "hidden"])
    assert hidden is not None
    assert (hidden.kind, hidden.item, hidden.default) == ("list", "int", [256])
    embedding_lr = schema.find_field(["optim", "embedding_lr"])
    assert embedding_lr is not None and embedding_lr.optional and embedding_lr.kind == "float"


def test_find_field_follows_the_kinds_in_the_data() -> None:
    toy = {"task": {"kind": "toy_addition"}}
    assert schema.find_field(["task", "n"], toy) is not None
    assert schema.find_field(["task", "n"]) is None  # the default task is modular
    assert schema.find_field(["task", "p"], {"task": {"p": 31}}) is not None  # kind by default
    assert schema.find_field(["task", "p"], {"task": {"kind": ["not", "a", "tag"]}}) is None
    assert schema.find_field(["optim", "lr", "x"]) is None
    assert schema.find_field(["optim"]) is None  # a section, not a field


# --- text <-> values ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", LEAVES, ids=lambda spec: spec.dotted)
def test_every_leaf_value_round_trips_through_text(spec: FieldSpec) -> None:
    for value in samples(spec):
        text = schema.format_value(spec, value)
        parsed = schema.parse_text(spec, text)
        assert same(parsed, value), (value, text, parsed)
        assert schema.format_value(spec, parsed) == text


def test_command_line_and_form_read_text_the_same_way() -> None:
    read = schema.parse_field
    assert read(["model", "hidden"], "[64, 32]") == [64, 32]
    assert read(["model", "hidden"], "64, 32") == [64, 32]
    assert read(["model", "hidden"], "12") == [12]
    assert read(["name"], '"run one"') == "run one"
    assert read(["name"], "123") == "123"  # a string field keeps digits as text
    assert read(["schedule", "steps"], "1_000") == 1000
    assert read(["schedule", "steps"], "3.0") == 3.0  # pydantic decides whether that is an int
    assert read(["probes", "weight_norm"], "false") is False
    assert read(["task", "op"], "x^2+y^2") == "x^2+y^2"
    assert read(["optim", "embedding_lr"], "") is None
    assert read(["tags"], "a, b") == ["a", "b"]
    # unparseable text stays text, for pydantic to name the field
    assert read(["optim", "lr"], "fast") == "fast"
    assert read(["model", "hidden"], "[" * 5000) == "[" * 5000
    # a field the model lacks: TOML or a bare word
    assert read(["optim", "bogus"], "1") == 1
    assert read(["bogus"], "x y") == "x y"


def test_the_kind_in_the_data_decides_how_text_is_read() -> None:
    mnist = {"task": {"kind": "mnist"}}
    assert schema.parse_field(["task", "data_root"], "123", mnist) == "123"
    assert schema.parse_field(["task", "data_root"], "123") == 123  # unknown to modular


def test_sweep_axis_values() -> None:
    lr = schema.find_field(["optim", "lr"])
    hidden = schema.find_field(["model", "hidden"])
    tags = schema.find_field(["tags"])
    assert lr is not None and hidden is not None and tags is not None
    assert schema.parse_values(lr, "1e-4,3e-4, 1e-3") == [1e-4, 3e-4, 1e-3]
    assert schema.parse_values(hidden, "[64], [128, 128]") == [[64], [128, 128]]
    assert schema.parse_values(tags, '["a", "b,c"], d') == [["a", "b,c"], ["d"]]
    for bad in ("", "1e-4,", "1e-4,,3e-4"):
        with pytest.raises(ConfigError, match="optim.lr"):
            schema.parse_values(lr, bad)


# --- where errors belong --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "tag"), [(u.path[0], tag) for u in UNIONS for tag in u.members]
)
def test_errors_of_every_kind_name_the_field_without_the_tag(section: str, tag: str) -> None:
    _, errors = schema.validate(Experiment, {section: {"kind": tag, "bogus": 1}})
    assert FieldError((section, "bogus"), "unknown field") in errors


def test_error_location_drops_only_union_tags() -> None:
    assert schema.error_location(("task", "toy_addition", "n")) == ("task", "n")
    assert schema.error_location(("model", "liu_toy", "hidden", 0)) == ("model", "hidden", 0)
    assert schema.error_location(("task",)) == ("task",)
    assert schema.error_location(("optim", "betas", 1)) == ("optim", "betas", 1)
    # a tag's name elsewhere is a field name, not a tag
    assert schema.error_location(("optim", "mlp")) == ("optim", "mlp")
    assert schema.error_location(("grokking_gap",), Detector) == ("grokking_gap",)


def test_an_invalid_toy_task_field_is_named_task_n() -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment("liu-toy", ["task.n=1"])
    message = str(info.value)
    assert message.startswith("liu-toy: task.n: ") and "toy_addition" not in message
    with pytest.raises(ConfigError, match=r"model\.out_dim: "):
        load_experiment("liu-toy", ["model.out_dim=0"])


def test_errors_are_placed_on_the_field_or_section_that_shows_them() -> None:
    fields = {("model", "hidden"), ("task", "kind"), ("model", "kind"), ("task", "p")}
    sections = {(), ("task",), ("model",)}

    def where(location: tuple, message: str = "bad") -> tuple:
        return schema.place(FieldError(location, message), fields, sections)

    assert where(("model", "hidden", 1)) == (("model", "hidden"), "item 2: bad")
    assert where(("task", "p")) == (("task", "p"), "bad")
    assert where(("task",), "p=10 is not prime") == (("task",), "p=10 is not prime")
    assert where(("task", "nope")) == (("task",), "nope: bad")
    assert where(("elsewhere",)) == ((), "elsewhere: bad")
    message = "task.kind digits needs model.kind image_mlp"
    assert where((), message) == (("task", "kind"), message)


def test_validate_reports_what_pydantic_would_not_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cls: type, data: object) -> None:
        raise TypeError("a validator bug")

    monkeypatch.setattr(Experiment, "model_validate", classmethod(broken))
    experiment, errors = schema.validate(Experiment, {})
    assert experiment is None and errors == [FieldError((), "TypeError: a validator bug")]


def test_summary_is_one_line() -> None:
    errors = [FieldError(("optim", name), "unknown field") for name in "abcde"]
    assert schema.summary(errors, "x.toml") == (
        "x.toml: optim.a: unknown field; optim.b: unknown field; optim.c: unknown field"
        " (and 2 more)"
    )
    assert schema.summary([FieldError((), "whole")]) == "whole"


# --- --set uses the schema --------------------------------------------------------------------


def test_a_new_optimizer_kind_keeps_the_other_optimizer_fields() -> None:
    """optim.kind is a plain choice: only a union's kind starts its section afresh."""
    data = apply_overrides({"optim": {"lr": 0.5, "weight_decay": 0.0}}, ["optim.kind=sgd"])
    assert data["optim"] == {"lr": 0.5, "weight_decay": 0.0, "kind": "sgd"}
    data = apply_overrides({"task": {"kind": "modular", "p": 31}}, ["task.kind=digits"])
    assert data["task"] == {"kind": "digits"}


def test_overrides_are_read_for_the_kind_they_set() -> None:
    data = apply_overrides(
        {"name": "x"},
        ["task.data_root=123", "task.kind=mnist", "model.kind=image_mlp", "task.source=bundled"],
    )
    assert data["task"]["data_root"] == "123"
    assert build_experiment(data).task.data_root == "123"
