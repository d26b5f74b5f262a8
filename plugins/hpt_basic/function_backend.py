"""The `function` backend: tune a standard test function (`--function branin`).

With a budget (or `epochs`) it behaves like a training run, cheaply: one "epoch" per unit of budget, each
reporting the function value plus noise that shrinks as the budget grows (`noise`), sleeping
`delay` seconds per epoch, and keeping a checkpoint so a larger budget later continues where the
last one stopped. Tests and benchmarks of early-stopping strategies use it that way.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
from hpt.backend import Backend, TrialContext, TrialPruned
from hpt.errors import PluginError
from hpt.space import Params, Space

from hpt_basic.test_functions import FUNCTIONS, TestFunction


class FunctionBackend(Backend):
    """Evaluates a test function with a known optimum; the objective is its value (minimised).

    Options:
        function: branin, hartmann6, rosenbrock, ackley, mixed (every parameter kind) or zdt1 (two objectives).
        dim: the dimension of rosenbrock, ackley and zdt1.
        delay: seconds each evaluation (or epoch) sleeps, to stand in for training.
        noise: noise of the reported values, shrinking as the budget grows.
        epochs: epochs a trial given no budget trains (reporting a curve) instead of one evaluation.
    """

    name = "function"

    def __init__(
        self,
        function: str = "branin",
        dim: int | None = None,
        delay: float = 0.0,
        noise: float = 0.0,
        epochs: int | None = None,
    ) -> None:
        if function not in FUNCTIONS:
            raise PluginError(f"unknown function {function!r}; available: {', '.join(sorted(FUNCTIONS))}")
        self.function_name = function  # the name, not the object: a backend is pickled to workers
        if dim is not None and self.function.fixed_dim and int(dim) != self.function.default_dim:
            raise PluginError(f"function {function!r} is {self.function.default_dim}-dimensional; drop --dim")
        self.dim = int(dim) if dim is not None else self.function.default_dim
        if self.dim < 2:
            raise PluginError(f"--dim must be at least 2, got {self.dim}")
        if delay < 0 or noise < 0:
            raise PluginError("delay and noise must be >= 0")
        self.delay, self.noise = float(delay), float(noise)
        self.epochs = int(epochs) if epochs else None  # epochs of a trial given no budget

    @property
    def function(self) -> TestFunction:
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
        return {
            "function": self.function.name,
            "dim": self.dim,
            "delay": self.delay,
            "noise": self.noise,
            "epochs": self.epochs,
        }

    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> float | tuple[float, ...]:
        if budget is None and self.epochs is None:
            time.sleep(self.delay)
            return self.function.evaluate(params)
        return self._train(params, max(1, math.ceil(budget or self.epochs)), ctx)

    def _train(self, params: Params, epochs: int, ctx: TrialContext) -> float:
        if self.function.n_objectives > 1:
            raise PluginError(f"function {self.function.name!r} has several objectives; budgets need one")
        state = ctx.checkpoint_dir / "state.json" if ctx.checkpoint_dir else None
        start = json.loads(state.read_text())["epochs"] if state and state.exists() else 0
        exact = self.function.evaluate(params)
        value = self._noisy(exact, epochs - 1, ctx.seed)
        for epoch in range(start, epochs):
            time.sleep(self.delay)
            value = self._noisy(exact, epoch, ctx.seed)
            ctx.report(epoch, {ctx.metric: value})
            if ctx.should_stop():
                self._save(state, epoch + 1)
                raise TrialPruned
        self._save(state, max(start, epochs))
        return value

    def _noisy(self, exact: float, epoch: int, seed: int | None) -> float:
        """The value seen after `epoch + 1` epochs: noise with standard deviation noise / sqrt(epoch + 1)."""
        rng = np.random.default_rng([seed or 0, epoch])
        return exact + self.noise * float(rng.normal()) / math.sqrt(epoch + 1)

    @staticmethod
    def _save(state: Any, epochs: int) -> None:
        if state is not None:
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"epochs": epochs}))
