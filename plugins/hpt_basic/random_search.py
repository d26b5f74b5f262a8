"""Random search: the baseline every other strategy must beat."""

from hpt.strategy import Strategy
from hpt.trial import Suggestion


class RandomSearch(Strategy):
    """Independent samples from the space (log-uniform where a parameter is log-scaled)."""

    name = "random"
    multi_objective = True

    def ask(self, n: int = 1) -> list[Suggestion]:
        return [Suggestion(self.space.sample(self.rng)) for _ in range(n)]
