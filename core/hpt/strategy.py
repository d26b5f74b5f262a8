"""The Strategy interface: propose configurations (`ask`) and learn from finished trials (`tell`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from hpt.space import Space
from hpt.trial import Suggestion, Trial, TrialState


class Strategy(ABC):
    """Base class of all search strategies.

    Contract:
    - `ask(n)` returns up to `n` suggestions; it may be called again before earlier ones are
      told (parallel workers), so a strategy must not propose the same pending point twice
      where that matters. An empty list with nothing pending means the strategy is exhausted.
    - `tell(trial)` receives every finished trial (complete, pruned or failed). Resume replays
      finished trials through `tell`, so a strategy's state must be rebuildable from them.
    - Resume continues the search: a fresh instance (same space, seed and options) told a study's
      finished trials in trial order must propose what the stopped one would have proposed next, or at
      least no configuration already finished (unless the space is exhausted). The simple way is a
      counter-based random stream: draw suggestion i from `rng_for(i)` and, in `tell`, move the
      counter past `trial.number`, so replayed trials put the strategy where it was. A strategy that
      draws from one generator (`self.rng`) at ask time restarts that stream on resume and repeats itself.
      `hpt.testing.check_strategy` checks this along with the rest of the contract.
    - Options arrive as keyword arguments (`--option key=value` on the CLI).
    """

    name: ClassVar[str] = ""
    multi_objective: ClassVar[bool] = False
    """Whether the strategy can optimise several objectives at once."""

    def __init__(self, space: Space, *, directions: Sequence[str] = ("minimize",), seed: int | None = None) -> None:
        self.space = space
        self.directions = tuple(directions)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # the root of `rng_for`: the seed, or fresh entropy when there is none (nothing to reproduce then)
        self._stream_root = np.random.SeedSequence(seed).entropy

    def rng_for(self, index: int) -> np.random.Generator:
        """The random stream of suggestion `index`, derived from (seed, index) alone: the same in a
        resumed study as in one that never stopped, whatever was drawn before."""
        return np.random.default_rng([self._stream_root, index])

    @abstractmethod
    def ask(self, n: int = 1) -> list[Suggestion]:
        """Propose up to `n` configurations."""

    def ask_promotions(self, n: int = 1) -> list[Suggestion]:
        """Once the study starts no new configurations, propose only promotions of started ones
        (more budget for a trial that earned it). Strategies without budgets have none."""
        return []

    def tell(self, trial: Trial) -> None:  # noqa: B027 - optional hook: stateless strategies learn nothing
        """Learn from a finished trial."""

    def set_budget(self, trials: int | None) -> None:  # noqa: B027 - optional hook: most strategies need no budget
        """The study's total trial count where known, told before the first ask (and again on resume); a
        strategy may size its initial design by it."""

    def warm_start(self, trials: Sequence[Trial]) -> None:
        """Learn from the finished trials of an earlier study before the first ask (`--warm-start`). They are
        not this study's trials: their numbers are negative and they are never promoted. By default each
        is told; a strategy that maps trials by number (a scheduler) hands them to what proposes."""
        for trial in trials:
            self.tell(trial)

    def loss(self, trial: Trial) -> float | None:
        """The first objective as a value to minimise, or None when the trial has none (failed)."""
        if trial.state is TrialState.FAILED or trial.value is None:
            return None
        return trial.value if self.directions[0] == "minimize" else -trial.value

    def losses(self, trial: Trial) -> list[float] | None:
        """All objectives as values to minimise, or None when the trial has none."""
        if trial.state is TrialState.FAILED or not trial.values:
            return None
        return [v if d == "minimize" else -v for v, d in zip(trial.values, self.directions, strict=True)]
