"""Maps an hpt Space onto scikit-optimize dimensions and back.

Fixed parameters are left out. Log floats become log-uniform `Real`s, integers `Integer`s
(a stepped integer becomes the index of its step, so the model never sees an invalid value),
categoricals a `Categorical` over choice indices (choices may be any scalar type). A
conditional parameter that is inactive is given one constant value (its mid-range value) so
the surrogate sees the same coordinate for every trial where it did not matter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpt.space import Categorical, Float, Int, Param, Params, Space
from skopt.space import Categorical as SkCategorical
from skopt.space import Dimension, Integer, Real

Point = list[Any]


def _dimension(name: str, param: Param) -> Dimension:
    if isinstance(param, Float):
        return Real(param.low, param.high, prior="log-uniform" if param.log else "uniform", name=name)
    if isinstance(param, Int):
        if param.log:
            return Integer(param.low, param.high, prior="log-uniform", name=name)
        return Integer(0, param.count - 1, name=name)
    if isinstance(param, Categorical):
        return SkCategorical(list(range(len(param.choices))), name=name)
    raise TypeError(f"no scikit-optimize dimension for {type(param).__name__}")


class SkoptSpace:
    """The scikit-optimize view of a Space: `dimensions`, `to_point(params)` and `to_params(point)`."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.names = space.tunable_names
        self.dimensions = [_dimension(name, space[name]) for name in self.names]
        self._inactive = [self._coordinate(name, space[name].decode(0.5)) for name in self.names]

    def _coordinate(self, name: str, value: Any) -> Any:
        param = self.space[name]
        if isinstance(param, Float):
            return float(value)
        if isinstance(param, Int):
            return int(value) if param.log else (int(value) - param.low) // param.step
        return param.choices.index(param.validate(value))

    def _value(self, name: str, coordinate: Any) -> Any:
        param = self.space[name]
        if isinstance(param, Float):
            return min(max(float(coordinate), param.low), param.high)
        if isinstance(param, Int):
            return int(coordinate) if param.log else param.low + int(coordinate) * param.step
        return param.choices[int(coordinate)]

    def to_point(self, params: Mapping[str, Any]) -> Point:
        """A point for the optimizer; inactive parameters get their constant stand-in."""
        return [
            self._coordinate(name, params[name]) if name in params else stand_in
            for name, stand_in in zip(self.names, self._inactive, strict=True)
        ]

    def to_params(self, point: Point) -> Params:
        """Params for a point, without the parameters whose condition does not hold."""
        coords = dict(zip(self.names, point, strict=True))
        params: Params = {}
        for name, param in self.space.items():
            if self.space.is_active(name, params):
                params[name] = self._value(name, coords[name]) if name in coords else param.decode(0.5)
        return params
