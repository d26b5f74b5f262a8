"""Ask/tell bookkeeping shared by the DEAP strategies: a generation is handed out to the study loop
point by point and bred into the next one only when every member has been told.

Individuals live in the unit cube of the space's tunable parameters (`Space.encode` / `decode`).
Asks never consume randomness and each generation is bred from a seed drawn from the strategy's
own generator, so a fresh instance told the same trials in the same order rebuilds exactly the
same generations (resume). A told trial that belongs to no member of the current generation (an
interrupted trial re-run after a resume, a point enqueued by hand) joins the breeding pool as an
immigrant. A failed trial gets the worst fitness: one more than the worst loss seen, per objective.

A member whose configuration was already evaluated (a child that variation left equal to its parent,
CMA-ES samples clipped to the same corner, integer or categorical genes decoding alike) is never handed
out again: it takes the known result, and a generation made only of known configurations is bred on at
once (up to `MAX_STALE_GENERATIONS` in a row: then the small space is taken as exhausted).
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np
from deap import base
from hpt.errors import PluginError
from hpt.space import Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial

Genes = list[float]
MAX_STALE_GENERATIONS = 50
"""Generations in a row with nothing new to evaluate before the strategy reports itself exhausted."""


@cache
def fitness_class(n_objectives: int) -> type[base.Fitness]:
    """A DEAP fitness minimising `n_objectives` losses (built here, not in `deap.creator`'s global namespace)."""
    return type(f"Loss{n_objectives}", (base.Fitness,), {"weights": (-1.0,) * n_objectives})


class Individual(list):
    """A point of the unit cube with a DEAP fitness."""

    def __init__(self, genes: Sequence[float], losses: Sequence[float] | None = None) -> None:
        super().__init__(float(g) for g in genes)
        self.fitness = fitness_class(len(losses) if losses is not None else 1)()
        if losses is not None:
            self.fitness.values = tuple(losses)


def _key(params: Mapping[str, Any]) -> str:
    return repr(sorted(params.items()))


def check_option(strategy: str, ok: bool, message: str) -> None:
    """Raise the one-line error for a bad option value."""
    if not ok:
        raise PluginError(f"strategy {strategy!r}: {message}")


class GenerationalStrategy(Strategy):
    """Base of the DEAP strategies: subclasses define the first generation and how to breed the next."""

    def __init__(self, space: Space, *, directions: Sequence[str] = ("minimize",), seed: int | None = None) -> None:
        super().__init__(space, directions=directions, seed=seed)
        check_option(self.name, bool(space.tunable_names), "the space has nothing to tune (every parameter is fixed)")
        self.dim = len(space.tunable_names)
        self.generation = 0
        self._members: list[Genes] = []
        self._losses: list[list[float] | None | bool] = []  # False: not told yet
        self._handed: set[int] = set()
        self._index: dict[str, list[int]] = {}
        self._keys: list[str] = []
        self._immigrants: list[tuple[Genes, list[float] | None]] = []
        self._worst: list[float] | None = None
        self._known: dict[str, list[float] | None] = {}  # every finished configuration and its losses
        self._stale = 0  # generations in a row bred without a configuration to evaluate

    @contextmanager
    def seeded(self) -> Iterator[None]:
        """Run DEAP code (which draws from the global `random` and `numpy.random`) reproducibly, leaving
        the caller's global random state untouched."""
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(int(self.rng.integers(2**63 - 1)))
        np.random.seed(int(self.rng.integers(2**32 - 1)))
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

    def start(self, members: Sequence[Sequence[float]]) -> None:
        """Make `members` (points of the unit cube) the generation to evaluate."""
        self._members = [[min(max(float(g), 0.0), 1.0) for g in genes] for genes in members]
        self._losses = [False] * len(self._members)
        self._handed = set()
        self._index = {}
        self._keys = [_key(self.space.validate(self.space.decode(genes))) for genes in self._members]
        for i, key in enumerate(self._keys):
            if key in self._known:  # evaluated before: take its result instead of evaluating it again
                self._losses[i] = self._known[key]
            else:
                self._index.setdefault(key, []).append(i)

    def ask(self, n: int = 1) -> list[Suggestion]:
        """Members of the current generation not handed out yet; fewer than `n` (maybe none) while
        the rest of the generation is still running."""
        out = []
        for i, genes in enumerate(self._members):
            if len(out) == n:
                break
            first = self._index.get(self._keys[i], [i])[0] == i  # a twin in the generation waits for its result
            if first and i not in self._handed and self._losses[i] is False:
                self._handed.add(i)
                out.append(Suggestion(self.space.decode(genes)))
        return out

    def tell(self, trial: Trial) -> None:
        losses = self.losses(trial)
        if losses is not None:
            self._worst = (
                losses if self._worst is None else [max(a, b) for a, b in zip(self._worst, losses, strict=True)]
            )
        key = _key(trial.params)
        self._known[key] = losses
        waiting = [i for i in self._index.get(key, []) if self._losses[i] is False]
        for i in waiting:  # the member and any twin of it in this generation
            self._losses[i] = losses
        if not waiting:
            self._immigrants.append((list(self.space.encode(trial.params)), losses))
        self._stale = 0
        while self._members and all(loss is not False for loss in self._losses):
            if self._stale >= MAX_STALE_GENERATIONS:
                self._members, self._losses = [], []  # nothing new turns up: the space is exhausted
                break
            self._breed_next()
            self._stale += not self._index  # every member of the new generation was known already

    def _breed_next(self) -> None:
        evaluated = [Individual(g, self._fitness(loss)) for g, loss in zip(self._members, self._losses, strict=True)]
        evaluated += [Individual(g, self._fitness(loss)) for g, loss in self._immigrants]
        self._immigrants = []
        with self.seeded():
            members = self.breed(evaluated)
        self.generation += 1
        self.start(members)

    def _fitness(self, losses: list[float] | None) -> list[float]:
        if losses is not None:
            return losses
        worst = self._worst or [0.0] * len(self.directions)
        return [w + 1.0 for w in worst]

    @abstractmethod
    def breed(self, evaluated: list[Individual]) -> list[Genes]:
        """The next generation to evaluate, from the one just evaluated (plus immigrants)."""
