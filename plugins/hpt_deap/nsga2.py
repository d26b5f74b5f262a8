"""NSGA-II for multi-objective studies: DEAP's non-dominated sorting and crowding distance."""

from __future__ import annotations

from collections.abc import Sequence

from deap import tools
from hpt.space import Space

from hpt_deap.generational import GenerationalStrategy, Genes, Individual, check_option
from hpt_deap.variation import check_variation, vary


class Nsga2(GenerationalStrategy):
    """Survivors by `tools.selNSGA2` over parents and offspring, mates by `tools.selTournamentDCD`
    (dominance, then crowding), simulated binary crossover and bounded polynomial mutation.

    Options:
        population: members per generation, a multiple of 4 (as DEAP's mating tournament needs).
        cxpb: crossover probability.
        mutpb: mutation probability.
        eta: crowding of both operators (larger stays nearer the parents).
    """

    name = "nsga2"
    multi_objective = True

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        population: int = 20,
        cxpb: float = 0.9,
        mutpb: float = 0.2,
        eta: float = 20.0,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        check_option(
            self.name,
            isinstance(population, int) and population >= 4 and population % 4 == 0,
            f"population must be a multiple of 4, got {population!r}",
        )
        check_variation(self.name, cxpb, mutpb, eta)
        self.population, self.cxpb, self.mutpb, self.eta = population, float(cxpb), float(mutpb), float(eta)
        self.survivors: list[Individual] = []
        self.start(self.rng.random((population, self.dim)))

    def breed(self, evaluated: list[Individual]) -> list[Genes]:
        self.survivors = tools.selNSGA2(self.survivors + evaluated, self.population)
        mates = tools.selTournamentDCD(self.survivors, self.population)
        return vary(mates, self.cxpb, self.mutpb, self.eta)
