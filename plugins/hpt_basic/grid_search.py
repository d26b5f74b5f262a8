"""Grid search: every combination of the space's grid, each point once."""

from collections.abc import Sequence

from hpt.errors import PluginError
from hpt.space import Params, Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial

MAX_SHUFFLED = 1_000_000


def _key(params: Params) -> str:
    return repr(sorted(params.items()))


class GridSearch(Strategy):
    """Walks the grid (`resolution` points per continuous axis) in order, or shuffled.

    Points already proposed or told (after a resume) are skipped, so parallel workers and
    resumed studies never evaluate a point twice.

    Options:
        resolution: points per continuous axis (integers and categories take their own values).
        shuffle: walk the grid in a random order (seeded) instead of in order.
    """

    name = "grid"
    multi_objective = True

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        resolution: int = 5,
        shuffle: bool = False,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        self.resolution = int(resolution)
        self.size = space.grid_size(self.resolution)
        points = space.grid(self.resolution)
        if shuffle:
            if self.size > MAX_SHUFFLED:
                raise PluginError(
                    f"grid has {self.size:,} points, too many to shuffle; "
                    "narrow the space (--set) or lower -O resolution"
                )
            every_point = list(points)
            points = iter([every_point[i] for i in self.rng.permutation(self.size)])
        self._points = points
        self._seen: set[str] = set()

    def ask(self, n: int = 1) -> list[Suggestion]:
        out: list[Suggestion] = []
        for point in self._points:
            params = self.space.validate(point)  # as a told trial holds it (floats clipped to the bounds)
            key = _key(params)
            if key in self._seen:
                continue
            self._seen.add(key)
            out.append(Suggestion(params))
            if len(out) == n:
                break
        return out

    def tell(self, trial: Trial) -> None:
        self._seen.add(_key(trial.params))
