"""Random search: the baseline every other strategy must beat."""

from collections.abc import Sequence

from hpt.space import Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial


class RandomSearch(Strategy):
    """Independent samples from the space (log-uniform where a parameter is log-scaled).

    Suggestion i is drawn from its own stream (`rng_for(i)`), and a told trial moves the count past its
    number, so a resumed study goes on with the samples it would have drawn had it never stopped.
    """

    name = "random"
    multi_objective = True

    def __init__(self, space: Space, *, directions: Sequence[str] = ("minimize",), seed: int | None = None) -> None:
        super().__init__(space, directions=directions, seed=seed)
        self.index = 0

    def ask(self, n: int = 1) -> list[Suggestion]:
        out = []
        for _ in range(n):
            out.append(Suggestion(self.space.sample(self.rng_for(self.index))))
            self.index += 1
        return out

    def tell(self, trial: Trial) -> None:
        self.index = max(self.index, trial.number + 1)
