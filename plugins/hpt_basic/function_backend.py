"""The `function` backend: tune a standard test function (`--function branin`)."""

from __future__ import annotations

from typing import Any

from hpt.backend import Backend, TrialContext
from hpt.errors import PluginError
from hpt.space import Params, Space
from hpt_basic.test_functions import FUNCTIONS


class FunctionBackend(Backend):
    """Evaluates a test function with a known optimum; the objective is its value (minimised)."""

    name = "function"

    def __init__(self, function: str = "branin", dim: int | None = None) -> None:
        if function not in FUNCTIONS:
            raise PluginError(f"unknown function {function!r}; available: {', '.join(sorted(FUNCTIONS))}")
        self.function_name = function  # the name, not the object: a backend is pickled to workers
        if dim is not None and self.function.fixed_dim and int(dim) != self.function.default_dim:
            raise PluginError(f"function {function!r} is {self.function.default_dim}-dimensional; drop --dim")
        self.dim = int(dim) if dim is not None else self.function.default_dim
        if self.dim < 2:
            raise PluginError(f"--dim must be at least 2, got {self.dim}")

    @property
    def function(self):
        return FUNCTIONS[self.function_name]

    @property
    def directions(self) -> tuple[str, ...]:
        return ("minimize",) * self.function.n_objectives

    @property
    def optimum(self) -> float:
        return self.function.optimum

    def default_space(self) -> Space:
        return self.function.space(self.dim)

    def describe(self) -> str:
        return f"function-{self.function.name}"

    def tags(self) -> dict[str, str]:
        return {"hpt.dataset": self.function.name}

    def options(self) -> dict[str, Any]:
        return {"function": self.function.name, "dim": self.dim}

    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> float | tuple[float, ...]:
        return self.function.evaluate(params)
