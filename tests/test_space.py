"""Space: construction errors, sampling, validation, grids, unit-cube encoding, files, overrides."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hpt import Categorical, Fixed, Float, Int, Space, SpaceError
from hypothesis import given, settings
from hypothesis import strategies as st

MLP_LIKE = {
    "lr": Float(1e-4, 1e-1, log=True),
    "layers": Int(1, 4),
    "units": Int(16, 256, log=True),
    "batch": Int(16, 128, step=16),
    "optimizer": Categorical(["sgd", "momentum", "adam"]),
    "momentum": Float(0.5, 0.99, when={"optimizer": ["momentum"]}),
    "epochs": Fixed(10),
}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "'lr': low (0.1) must be below high (0.01)"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "'lr': log scale needs low > 0"),
        ({"act": {"type": "categorical", "choices": []}}, "'act': choices must not be empty"),
        ({"lr": {"type": "float", "low": 0, "hgih": 1}}, "'lr': unknown key 'hgih'"),
        (
            {"m": {"type": "float", "low": 0, "high": 1, "when": {"opt": ["sgd"]}}},
            "'m': condition on unknown parameter 'opt'",
        ),
        ({"n": {"type": "int", "low": 1.5, "high": 4}}, "'n': low must be an integer"),
        ({"x": {"type": "complex"}}, "'x': unknown type 'complex'"),
    ],
)
def test_malformed_space_names_the_parameter(spec, fragment):
    with pytest.raises(SpaceError) as err:
        Space(spec)
    assert fragment in str(err.value)


def test_condition_value_must_be_valid_for_parent():
    with pytest.raises(SpaceError, match="'m': condition value for 'opt'"):
        Space({"opt": Categorical(["sgd", "adam"]), "m": Float(0, 1, when={"opt": ["rmsprop"]})})


def test_sample_is_seeded_valid_and_respects_conditions():
    space = Space(MLP_LIKE)
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(300)]
    for params in samples:
        assert space.validate(params) == params
        assert ("momentum" in params) == (params["optimizer"] == "momentum")
        assert params["batch"] % 16 == 0 and params["epochs"] == 10
    # log-uniform: about half the learning rates fall below the geometric middle 1e-2.5
    below = sum(p["lr"] < 10**-2.5 for p in samples) / len(samples)
    assert 0.4 < below < 0.6


def test_validate_rejects_bad_values_with_the_name():
    space = Space(MLP_LIKE)
    good = {"lr": 0.01, "layers": 2, "units": 64, "batch": 32, "optimizer": "adam"}
    assert space.validate(good)["epochs"] == 10
    with pytest.raises(SpaceError, match="'lr': 0.5 is outside"):
        space.validate({**good, "lr": 0.5})
    with pytest.raises(SpaceError, match="'batch': 40 is outside 16..128 \\(step 16\\)"):
        space.validate({**good, "batch": 40})
    with pytest.raises(SpaceError, match="unknown parameter 'lrr'"):
        space.validate({**good, "lrr": 1})
    with pytest.raises(SpaceError, match="'momentum' is missing"):
        space.validate({**good, "optimizer": "momentum"})
    # an inactive conditional parameter is dropped, not an error
    assert "momentum" not in space.validate({**good, "momentum": 0.9})


def test_grid_points_and_conditions():
    space = Space({"a": Float(0, 1), "b": Int(1, 3), "c": Categorical(["x", "y"])})
    grid = list(space.grid(3))
    assert len(grid) == space.grid_size(3) == 3 * 3 * 2
    assert {p["a"] for p in grid} == {0.0, 0.5, 1.0}
    cond = Space(MLP_LIKE)
    points = list(cond.grid(2))
    assert len(points) == cond.grid_size(2)
    with_momentum = [p for p in points if p["optimizer"] == "momentum"]
    without = [p for p in points if p["optimizer"] != "momentum"]
    assert all("momentum" in p for p in with_momentum) and not any("momentum" in p for p in without)
    assert len(with_momentum) == 2 * sum(p["optimizer"] == "sgd" for p in without)  # only its branch doubles
    assert len({repr(sorted(p.items())) for p in points}) == len(points)
    assert sorted({p["units"] for p in points}) == [16, 256]
    assert Int(1, 100, log=True).grid(3) == [1, 10, 100]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_decode_then_encode_then_decode_is_stable(u):
    space = Space(MLP_LIKE)
    params = space.decode(u)
    assert space.validate(params) == params
    assert space.decode(space.encode(params)) == params
    assert np.all((space.encode(params) >= 0) & (space.encode(params) <= 1))


@settings(max_examples=100, deadline=None)
@given(low=st.integers(-50, 50), span=st.integers(1, 60), step=st.integers(1, 7))
def test_int_encoding_covers_every_value_evenly(low, span, step):
    param = Int(low, low + span, step=step)
    values = [param.decode((i + 0.5) / param.count) for i in range(param.count)]
    assert values == list(range(param.low, param.high + 1, step))
    assert all(param.decode(param.encode(v)) == v for v in values)


def test_fixed_parameters_are_not_tunable():
    space = Space(MLP_LIKE)
    assert "epochs" not in space.tunable_names
    assert len(space.encode(space.sample(np.random.default_rng(0)))) == len(MLP_LIKE) - 1


def test_load_yaml_and_toml(tmp_path):
    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text(
        "lr: {type: float, low: 1e-4, high: 0.1, log: true}\n"
        "act: [relu, tanh]\n"
        "layers: {type: int, low: 1, high: 3}\n"
        "momentum: {type: float, low: 0.5, high: 0.9, when: {act: [relu]}}\n"
        "epochs: 5\n"
    )
    toml_file = tmp_path / "space.toml"
    toml_file.write_text(
        '[space.lr]\ntype = "float"\nlow = 1e-4\nhigh = 0.1\nlog = true\n'
        '[space.act]\ntype = "categorical"\nchoices = ["relu", "tanh"]\n'
        '[space.layers]\ntype = "int"\nlow = 1\nhigh = 3\n'
        '[space.momentum]\ntype = "float"\nlow = 0.5\nhigh = 0.9\nwhen = { act = ["relu"] }\n'
        "[space]\nepochs = 5\n"
    )
    a, b = Space.load(yaml_file), Space.load(toml_file)
    assert a == b
    assert a["lr"] == Float(1e-4, 0.1, log=True) and a["epochs"] == Fixed(5)
    assert Space.from_dict(a.to_dict()) == a


def test_bad_space_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: {type: float, low: 1\n")
    with pytest.raises(SpaceError, match="is not valid yaml"):
        Space.load(broken)
    with pytest.raises(SpaceError, match="cannot read space file"):
        Space.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[lr]\ntype = "float"\nlow = 2\nhigh = 1\n')
    with pytest.raises(SpaceError, match="'lr': low \\(2\\) must be below high \\(1\\)"):
        Space.load(bad)


def test_overrides_pin_and_narrow():
    space = Space(MLP_LIKE)
    pinned = space.override("optimizer", "momentum")
    assert pinned["optimizer"] == Fixed("momentum")
    assert all("momentum" in pinned.sample(np.random.default_rng(i)) for i in range(5))
    narrow = space.override("lr", "1e-3..1e-2").override("optimizer", "sgd,adam")
    assert narrow["lr"] == Float(1e-3, 1e-2, log=True)
    assert narrow["optimizer"].choices == ("sgd", "adam")
    assert space.override("layers", "3")["layers"] == Fixed(3)
    with pytest.raises(SpaceError, match="--set nope: unknown parameter"):
        space.override("nope", "1")
    with pytest.raises(SpaceError, match="--set lr=nan: value must be a finite number"):
        space.override("lr", "nan")
    with pytest.raises(SpaceError, match="--set layers=two"):
        space.override("layers", "two")
    with pytest.raises(SpaceError, match="--set optimizer=sgd,rmsprop"):
        space.override("optimizer", "sgd,rmsprop")


def test_parse_reads_back_mlflow_strings():
    space = Space(MLP_LIKE)
    params = space.sample(np.random.default_rng(3))
    assert space.parse({k: str(v) for k, v in params.items()}) == params
    assert math.isclose(Space({"x": Float(0, 1)}).parse({"x": "0.25"})["x"], 0.25)


def test_pinning_a_parent_drops_children_that_can_never_be_active():
    space = Space(MLP_LIKE)
    assert "momentum" not in space.override("optimizer", "adam")
    assert "momentum" not in space.override("optimizer", "sgd,adam")
    kept = space.override("optimizer", "momentum,adam")
    assert kept["momentum"].when == {"optimizer": ("momentum",)}
