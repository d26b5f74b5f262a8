"""The `function` backend: known optima at known minimisers, spaces, options."""

from __future__ import annotations

import math

import pytest
from hpt.backend import TrialContext
from hpt.errors import PluginError
from hpt_basic.function_backend import FunctionBackend
from hpt_basic.test_functions import FUNCTIONS

H6_MINIMISER = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("branin", {"x1": math.pi, "x2": 2.275}),
        ("branin", {"x1": -math.pi, "x2": 12.275}),
        ("hartmann6", {f"x{i + 1}": v for i, v in enumerate(H6_MINIMISER)}),
        ("rosenbrock", {f"x{i}": 1.0 for i in range(1, 5)}),
        ("ackley", {f"x{i}": 0.0 for i in range(1, 6)}),
        ("mixed", {"kind": "b", "x1": -1.5, "x2": 1.0, "n": 7}),
    ],
)
def test_value_at_the_known_minimiser_is_the_optimum(name, params):
    backend = FunctionBackend(name)
    assert backend.default_space().validate(params) == params
    value = backend.evaluate(params, None, TrialContext(0))
    assert value == pytest.approx(FUNCTIONS[name].optimum, abs=1e-4)


@pytest.mark.parametrize("name", ["branin", "hartmann6", "rosenbrock", "ackley", "mixed"])
def test_no_sampled_point_beats_the_optimum(name):
    import numpy as np

    backend = FunctionBackend(name)
    space, rng = backend.default_space(), np.random.default_rng(0)
    values = [backend.evaluate(space.sample(rng), None, TrialContext(0)) for _ in range(500)]
    assert min(values) > backend.optimum


def test_dimension_option():
    assert len(FunctionBackend("ackley", dim=3).default_space()) == 3
    with pytest.raises(PluginError, match="'branin' is 2-dimensional"):
        FunctionBackend("branin", dim=3)
    with pytest.raises(PluginError, match="unknown function 'nope'; available: ackley, branin"):
        FunctionBackend("nope")


def test_zdt1_has_two_objectives_on_its_front():
    backend = FunctionBackend("zdt1")
    assert backend.directions == ("minimize", "minimize")
    f1, f2 = backend.evaluate({"x1": 0.25, **{f"x{i}": 0.0 for i in range(2, 7)}}, None, TrialContext(0))
    assert (f1, f2) == pytest.approx((0.25, 0.5))
