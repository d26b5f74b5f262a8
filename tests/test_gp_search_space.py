"""hpt_auto.search_space: params -> model inputs -> params round trips for every parameter kind, the one-hot
columns, inactive conditional parameters, and decoding of arbitrary rows to valid params."""

from __future__ import annotations

import numpy as np
import pytest
from hpt.space import Categorical, Space
from hpt_auto.search_space import Encoding, key
from test_auto_strategy import MIXED

SPACE = MIXED  # every parameter kind, a conditional and a fixed one


def test_columns_one_per_numeric_parameter_and_one_per_choice():
    encoding = Encoding(SPACE)
    assert encoding.names == ["lr", "dropout", "units", "layers", "batch", "optimizer", "momentum"]
    assert encoding.width == 5 + 3 + 1
    assert list(encoding.numeric_columns) == [0, 1, 2, 3, 4, 8]
    assert encoding.slices["optimizer"] == slice(5, 8)


@pytest.mark.parametrize("seed", range(20))
def test_sampled_params_round_trip_exactly(seed):
    encoding = Encoding(SPACE)
    params = SPACE.sample(np.random.default_rng(seed))
    row = encoding.encode(params)
    assert np.all((row >= 0) & (row <= 1))
    assert encoding.decode(row) == params
    assert np.array_equal(encoding.encode(encoding.decode(row)), row)


def test_each_kind_encodes_to_its_unit_code():
    encoding = Encoding(SPACE)
    row = encoding.encode(
        {"lr": 1e-2, "dropout": 0.25, "units": 64, "layers": 1, "batch": 128, "optimizer": "adam", "epochs": 5}
    )
    assert row[0] == pytest.approx(2 / 3)  # log scale: 1e-2 is two thirds of the way from 1e-4 to 1e-1
    assert row[1] == pytest.approx(0.5)
    assert row[2] == pytest.approx(SPACE["units"].encode(64))
    assert list(row[5:8]) == [0.0, 1.0, 0.0]
    assert row[8] == 0.5  # momentum inactive (not sgd): a constant mid-range


def test_an_inactive_categorical_is_spread_over_its_columns():
    space = Space({"use": Categorical([True, False]), "kind": Categorical(["a", "b", "c", "d"], when={"use": [True]})})
    row = Encoding(space).encode({"use": False})
    assert list(row[2:]) == [0.25] * 4


def test_any_row_decodes_to_valid_params_and_conditions_hold():
    encoding = Encoding(SPACE)
    rng = np.random.default_rng(0)
    for row in rng.normal(0.5, 0.8, size=(50, encoding.width)):
        params = encoding.decode(row)
        assert SPACE.validate(params) == params
        assert ("momentum" in params) == (params["optimizer"] == "sgd")


def test_units_map_to_rows_that_decode_to_the_same_point_as_the_space():
    encoding = Encoding(SPACE)
    units = np.random.default_rng(1).random((30, len(encoding.names)))
    for u, row in zip(units, encoding.from_units(units), strict=True):
        assert encoding.decode(row) == SPACE.decode(u)


def test_key_ignores_order():
    assert key({"a": 1, "b": 2}) == key({"b": 2, "a": 1}) != key({"a": 2, "b": 2})
