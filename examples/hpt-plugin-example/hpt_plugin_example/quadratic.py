"""A backend to copy: a noisy-free quadratic bowl whose options are flags of `hpt run`."""

from __future__ import annotations

from hpt import Backend, Float, Int, Space, TrialContext


class Quadratic(Backend):
    """Minimise `scale * sum((x_i - centre)^2)` over `dim` coordinates in [-5, 5], one "epoch" per budget unit.

    Options:
        centre: where the minimum lies on every axis.
        scale: how steep the bowl is.
        dim: how many coordinates to tune.
    """

    name = "quadratic"

    def __init__(self, centre: float = 0.0, scale: float = 1.0, dim: int = 2) -> None:
        self.centre, self.scale, self.dim = float(centre), float(scale), int(dim)

    def default_space(self) -> Space:
        return Space({**{f"x{i}": Float(-5, 5) for i in range(self.dim)}, "steps": Int(1, 3)})

    def evaluate(self, params: dict, budget: float | None, ctx: TrialContext) -> float:
        value = self.scale * sum((params[f"x{i}"] - self.centre) ** 2 for i in range(self.dim))
        for step in range(params["steps"]):
            ctx.report(step, {"value": value})
        return value
