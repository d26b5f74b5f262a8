"""CMA-ES through `deap.cma.Strategy`, driven by ask/tell in the unit cube."""

from __future__ import annotations

from collections.abc import Sequence

from deap import cma
from hpt.space import Space

from hpt_deap.generational import GenerationalStrategy, Genes, Individual, check_option


class CmaEs(GenerationalStrategy):
    """Covariance matrix adaptation evolution strategy.

    Samples are clipped to the unit cube and the distribution is updated with the clipped points
    that were actually evaluated, so it never drifts outside the space.

    Options:
        population: samples per generation (lambda; default 4 + 3 ln d).
        sigma: the initial step size in the unit cube.
    """

    name = "cmaes"
    multi_objective = False

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        population: int | None = None,
        sigma: float = 0.3,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        check_option(
            self.name,
            population is None or isinstance(population, int) and population >= 2,
            f"population must be an integer >= 2, got {population!r}",
        )
        check_option(
            self.name, isinstance(sigma, int | float) and sigma > 0, f"sigma must be a positive number, got {sigma!r}"
        )
        extra = {} if population is None else {"lambda_": population}
        self.cma = cma.Strategy(centroid=[0.5] * self.dim, sigma=float(sigma), **extra)
        self.start(self._sample())

    def _sample(self) -> list[Genes]:
        with self.seeded():
            return self.cma.generate(list)

    def breed(self, evaluated: list[Individual]) -> list[Genes]:
        self.cma.update(evaluated)
        return self.cma.generate(list)
