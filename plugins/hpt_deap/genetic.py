"""A generational genetic algorithm from DEAP's toolbox, driven by ask/tell."""

from __future__ import annotations

from collections.abc import Sequence

from deap import tools
from hpt.space import Space

from hpt_deap.generational import GenerationalStrategy, Genes, Individual, check_option
from hpt_deap.variation import check_variation, vary


class GeneticAlgorithm(GenerationalStrategy):
    """Tournament selection, simulated binary crossover, bounded polynomial mutation and elitism.

    Options:
        population: members per generation.
        elite: best members kept unchanged, never re-evaluated (each generation after the first evaluates
            population - elite new members).
        tournament: tournament size of the selection.
        cxpb: crossover probability.
        mutpb: mutation probability.
        eta: crowding of both operators (larger stays nearer the parents).
    """

    name = "deap"
    multi_objective = False

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        population: int = 12,
        elite: int = 2,
        tournament: int = 3,
        cxpb: float = 0.9,
        mutpb: float = 0.2,
        eta: float = 10.0,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        check_option(
            self.name,
            isinstance(population, int) and population >= 4,
            f"population must be an integer >= 4, got {population!r}",
        )
        check_option(
            self.name,
            isinstance(elite, int) and 0 <= elite < population,
            f"elite must be an integer in 0..{population - 1}, got {elite!r}",
        )
        check_option(
            self.name,
            isinstance(tournament, int) and tournament >= 1,
            f"tournament must be an integer >= 1, got {tournament!r}",
        )
        check_variation(self.name, cxpb, mutpb, eta)
        self.population, self.elite, self.tournament = population, elite, tournament
        self.cxpb, self.mutpb, self.eta = float(cxpb), float(mutpb), float(eta)
        self.elites: list[Individual] = []
        self.start(self.rng.random((population, self.dim)))

    def breed(self, evaluated: list[Individual]) -> list[Genes]:
        pool = self.elites + evaluated
        self.elites = tools.selBest(pool, self.elite)
        parents = tools.selTournament(pool, self.population - self.elite, tournsize=self.tournament)
        return vary(parents, self.cxpb, self.mutpb, self.eta)
