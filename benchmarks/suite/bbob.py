"""BBOB functions of the COCO platform (package `coco-experiment`, its own implementations): f1 sphere,
f3 separable Rastrigin, f6 attractive sector, f7 step ellipsoid, f12 bent cigar, f15 rotated Rastrigin,
f17 Schaffers F7, f20 Schwefel x sin x, f21 Gallagher's 101 peaks, f24 Lunacek bi-Rastrigin, in 2, 5 and
10 dimensions, instances 1 to 6, on COCO's box [-5, 5]^d. The regret's reference is each problem's optimum
value f(x_opt) (COCO writes x_opt on request; it is evaluated once per problem and cached in memory).

Task names: `bbob_f06_d2_i1`. Groups: `bbob` (all 180), `bbob-confirm` (instances 4 to 6, held out: no
change to a strategy is chosen on them), `bbob-tune` (instances 1 to 3). Without coco-experiment the
family is absent and its names are unknown tasks.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from functools import cache

import numpy as np

from suite.functions import SyntheticTask, _box

FUNCTIONS = {
    1: "sphere",
    3: "separable Rastrigin",
    6: "attractive sector",
    7: "step ellipsoid",
    12: "bent cigar",
    15: "rotated Rastrigin",
    17: "Schaffers F7",
    20: "Schwefel x sin x",
    21: "Gallagher 101 peaks",
    24: "Lunacek bi-Rastrigin",
}
DIMENSIONS = (2, 5, 10)
INSTANCES = (1, 2, 3, 4, 5, 6)
TUNE_INSTANCES = (1, 2, 3)
AVAILABLE = importlib.util.find_spec("cocoex") is not None


@cache
def _suite():
    import cocoex

    return cocoex.Suite("bbob", "instances: 1-6", "")


@cache
def problem(fid: int, dim: int, instance: int):
    return _suite().get_problem_by_function_dimension_instance(fid, dim, instance)


@cache
def optimum(fid: int, dim: int, instance: int) -> float:
    """f(x_opt): COCO writes x_opt to a file in the working directory when asked, so ask in a scratch one."""
    p = problem(fid, dim, instance)
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            p._best_parameter("print")
            x_opt = np.atleast_1d(np.loadtxt("._bbob_problem_best_parameter.txt"))
        finally:
            os.chdir(here)
    return float(p(x_opt))


class _Function:
    """A picklable f(x) for one problem (the COCO object itself is built in the process that evaluates)."""

    def __init__(self, fid: int, dim: int, instance: int) -> None:
        self.triple = (fid, dim, instance)

    def __call__(self, x: np.ndarray) -> float:
        return float(problem(*self.triple)(np.asarray(x, dtype=float)))


def name(fid: int, dim: int, instance: int) -> str:
    return f"bbob_f{fid:02d}_d{dim}_i{instance}"


def _task(fid: int, dim: int, instance: int) -> SyntheticTask:
    return SyntheticTask(
        name(fid, dim, instance),
        _Function(fid, dim, instance),
        _box(dim, -5.0, 5.0),
        optimum(fid, dim, instance),
        f"BBOB f{fid} (coco-experiment), instance {instance}",
        FUNCTIONS[fid],
        family="bbob",
    )


TASKS: dict[str, SyntheticTask] = (
    {name(f, d, i): _task(f, d, i) for f in FUNCTIONS for d in DIMENSIONS for i in INSTANCES} if AVAILABLE else {}
)
"""Every BBOB task (empty without coco-experiment)."""


def group(dims: tuple[int, ...] = DIMENSIONS, instances: tuple[int, ...] = INSTANCES) -> list[str]:
    return [name(f, d, i) for f in FUNCTIONS for d in dims for i in instances if name(f, d, i) in TASKS]
