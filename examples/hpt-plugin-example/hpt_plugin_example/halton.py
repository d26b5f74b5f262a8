"""Halton quasi-random search: low-discrepancy points in the unit cube, decoded by the space."""

from collections.abc import Sequence

from hpt import Space, Strategy, Suggestion, Trial

_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


def radical_inverse(index: int, base: int) -> float:
    """The `index`-th element of the van der Corput sequence in `base`."""
    result, fraction = 0.0, 1.0 / base
    while index > 0:
        index, digit = divmod(index, base)
        result += digit * fraction
        fraction /= base
    return result


class HaltonSearch(Strategy):
    """Point i has coordinate d = radical_inverse(i + skip, d-th prime), shifted by a seeded offset.

    A told trial moves the sequence past its number, so a resumed study continues the sequence
    instead of starting it over.

    Options:
        skip: leading points of the sequence to skip (the first ones cluster near the origin).
    """

    name = "halton"

    def __init__(
        self, space: Space, *, directions: Sequence[str] = ("minimize",), seed: int | None = None, skip: int = 20
    ):
        super().__init__(space, directions=directions, seed=seed)
        if len(space.tunable_names) > len(_PRIMES):
            raise ValueError(f"halton supports up to {len(_PRIMES)} tunable parameters")
        self.skip = int(skip)
        self.index = self.skip
        self.shift = self.rng.random(len(space.tunable_names))

    def ask(self, n: int = 1) -> list[Suggestion]:
        out = []
        for _ in range(n):
            self.index += 1
            point = [(radical_inverse(self.index, p) + s) % 1.0 for p, s in zip(_PRIMES, self.shift, strict=False)]
            out.append(Suggestion(self.space.decode(point)))
        return out

    def tell(self, trial: Trial) -> None:
        self.index = max(self.index, self.skip + trial.number + 1)
