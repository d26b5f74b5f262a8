"""Params <-> model inputs: one column per numeric parameter (its unit-cube code: log parameters on their log
scale, integers in bins), one per choice of a categorical (one-hot); an inactive conditional parameter sits
at a constant (mid-range, or 1 / choices on each of its columns), the same for every trial."""

from __future__ import annotations

import numpy as np
from hpt.space import Categorical, Fixed, Params, Space


def key(params: Params) -> str:
    """A hashable identity of a configuration (to tell finished and pending points from new ones)."""
    return repr(sorted(params.items()))


class Encoding:
    """The model's input columns for a space: `encode`, `decode`, `from_units` and which columns are numeric."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.names = [n for n, p in space.items() if not isinstance(p, Fixed)]
        self.slices: dict[str, slice] = {}
        start = 0
        for name in self.names:
            width = len(space[name].choices) if isinstance(space[name], Categorical) else 1
            self.slices[name] = slice(start, start + width)
            start += width
        self.width = start
        self.numeric_columns = np.array(
            [self.slices[n].start for n in self.names if not isinstance(space[n], Categorical)], dtype=int
        )
        self.categoricals = [n for n in self.names if isinstance(space[n], Categorical)]

    def encode(self, params: Params) -> np.ndarray:
        row = np.zeros(self.width)
        for name in self.names:
            param, where = self.space[name], self.slices[name]
            if isinstance(param, Categorical):
                if name in params:
                    row[where.start + param.choices.index(param.validate(params[name]))] = 1.0
                else:
                    row[where] = 1.0 / len(param.choices)
            else:
                row[where.start] = param.encode(params[name]) if name in params else 0.5
        return row

    def decode(self, row: np.ndarray) -> Params:
        """Valid params for any row (numeric columns clipped to the cube, a categorical's largest column wins)."""
        return self.space.decode(self.units(row))

    def units(self, row: np.ndarray) -> list[float]:
        """The unit-cube point (one coordinate per parameter) of a row."""
        units = []
        for name in self.names:
            param, where = self.space[name], self.slices[name]
            if isinstance(param, Categorical):
                units.append((int(np.argmax(row[where])) + 0.5) / len(param.choices))
            else:
                units.append(float(np.clip(row[where.start], 0.0, 1.0)))
        return units

    def from_units(self, units: np.ndarray) -> np.ndarray:
        """Rows for points of [0, 1]^(parameters) (a design or random candidates)."""
        rows = np.zeros((len(units), self.width))
        for j, name in enumerate(self.names):
            param, where = self.space[name], self.slices[name]
            if isinstance(param, Categorical):
                k = len(param.choices)
                rows[np.arange(len(units)), where.start + np.minimum((units[:, j] * k).astype(int), k - 1)] = 1.0
            else:
                rows[:, where.start] = units[:, j]
        return rows

    def params_units(self, params: Params) -> list[float]:
        """The unit-cube point of params, inactive parameters at mid-range (to re-apply conditions on decode)."""
        return [self.space[n].encode(params[n]) if n in params else 0.5 for n in self.names]
