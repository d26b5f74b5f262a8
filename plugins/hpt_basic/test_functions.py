"""Standard optimisation test functions with known optima, for tests and benchmarks.

Each takes a params dict (names `x1`, `x2`, ...) and returns the value to minimise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hpt.space import Categorical, Float, Int, Params, Space


@dataclass(frozen=True)
class TestFunction:
    """A function, its domain for a dimension `dim`, and its known minimum."""

    name: str
    evaluate: Callable[[Params], float | tuple[float, ...]]
    space: Callable[[int], Space]
    optimum: float
    default_dim: int
    fixed_dim: bool = True
    n_objectives: int = 1

    __test__ = False  # not a pytest test class


def _xs(params: Params) -> np.ndarray:
    return np.array([params[f"x{i}"] for i in range(1, len([k for k in params if k.startswith("x")]) + 1)])


def _box(low: float, high: float) -> Callable[[int], Space]:
    return lambda dim: Space({f"x{i}": Float(low, high) for i in range(1, dim + 1)})


def branin(params: Params) -> float:
    x1, x2 = params["x1"], params["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(params: Params) -> float:
    x = _xs(params)
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def rosenbrock(params: Params) -> float:
    x = _xs(params)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def ackley(params: Params) -> float:
    x = _xs(params)
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d)) - math.exp(np.sum(np.cos(2 * math.pi * x)) / d) + 20 + math.e
    )


_MIXED_OFFSET = {"a": 1.0, "b": 0.0, "c": 0.5}
_MIXED_SHIFT = {"a": 2.0, "b": -1.5, "c": 0.0}


def mixed(params: Params) -> float:
    """A categorical choice shifts a continuous bowl; an integer adds a discrete term. Minimum 0
    at kind=b, x1=-1.5, x2=1, n=7."""
    kind = params["kind"]
    return (
        _MIXED_OFFSET[kind]
        + (params["x1"] - _MIXED_SHIFT[kind]) ** 2
        + 0.5 * (params["x2"] - 1.0) ** 2
        + 0.1 * (params["n"] - 7) ** 2
    )


def _mixed_space(dim: int) -> Space:
    return Space({"kind": Categorical(["a", "b", "c"]), "x1": Float(-5, 5), "x2": Float(-5, 5), "n": Int(1, 10)})


def zdt1(params: Params) -> tuple[float, float]:
    """Two objectives (both minimised) with a convex Pareto front f2 = 1 - sqrt(f1) where x2.. = 0."""
    x = _xs(params)
    g = 1 + 9 * float(np.sum(x[1:])) / (len(x) - 1)
    f1 = float(x[0])
    return f1, g * (1 - math.sqrt(f1 / g))


FUNCTIONS: dict[str, TestFunction] = {
    "branin": TestFunction("branin", branin, lambda d: Space({"x1": Float(-5, 10), "x2": Float(0, 15)}), 0.397887, 2),
    "hartmann6": TestFunction("hartmann6", hartmann6, _box(0.0, 1.0), -3.32237, 6),
    "rosenbrock": TestFunction("rosenbrock", rosenbrock, _box(-5.0, 10.0), 0.0, 4, fixed_dim=False),
    "ackley": TestFunction("ackley", ackley, _box(-32.768, 32.768), 0.0, 5, fixed_dim=False),
    "mixed": TestFunction("mixed", mixed, _mixed_space, 0.0, 4),
    "zdt1": TestFunction("zdt1", zdt1, _box(0.0, 1.0), math.nan, 6, fixed_dim=False, n_objectives=2),
}
