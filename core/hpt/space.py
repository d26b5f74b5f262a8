"""Search spaces: typed parameters, conditions, sampling, grids and the unit-cube encoding.

A `Space` is an ordered mapping of name -> parameter. Strategies that work in a continuous
box (GP, evolution) use `encode` / `decode`; grid search uses `grid`; random search uses
`sample`. Conditional parameters (`when={"optimizer": ["sgd"]}`) are left out of a params
dict when their condition does not hold.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hpt.errors import SpaceError

Params = dict[str, Any]
Scalar = str | int | float | bool


def _number(value: Any, what: str) -> float:
    """Coerce a bound read from YAML/TOML (where `1e-4` may arrive as a string) to float."""
    if isinstance(value, bool):
        raise SpaceError(f"{what} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{what} must be a number, got {value!r}") from None


_CONTROL = bytes([*range(0, 9), *range(14, 32)])
"""Bytes that no YAML or TOML text holds (tab, newlines and form feed aside): a binary file has them."""


def _text(data: bytes, path: Path) -> str:
    """A space file's bytes as text; one line for a binary file or one that is not UTF-8."""
    if any(byte in _CONTROL for byte in data[:4096]):
        raise SpaceError(f"space file {str(path)!r} is a binary file; a space file is YAML or TOML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SpaceError(
            f"space file {str(path)!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            f"convert it, e.g. from latin-1: iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}"
        ) from None


@dataclass(frozen=True)
class Param:
    """Base of all parameter kinds. `when` maps a parent parameter to the values that activate this one."""

    when: Mapping[str, tuple] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.when is not None:
            if not isinstance(self.when, Mapping) or not self.when:
                raise SpaceError("'when' must map a parameter name to the values that activate this one")
            frozen = {k: tuple(v) if isinstance(v, list | tuple | set) else (v,) for k, v in self.when.items()}
            object.__setattr__(self, "when", frozen)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.decode(float(rng.random()))

    def validate(self, value: Any) -> Any:
        raise NotImplementedError

    def grid(self, n: int) -> list:
        raise NotImplementedError

    def encode(self, value: Any) -> float:
        raise NotImplementedError

    def decode(self, u: float) -> Any:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """Read a value back from text (a `--set` value or an MLflow param)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def _with_when(self, d: dict) -> dict:
        if self.when:
            d["when"] = {k: list(v) for k, v in self.when.items()}
        return d


@dataclass(frozen=True)
class Float(Param):
    """A real number in [low, high], sampled uniformly or log-uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "low", _number(self.low, "low"))
        object.__setattr__(self, "high", _number(self.high, "high"))
        if not self.low < self.high:
            raise SpaceError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise SpaceError(f"log scale needs low > 0, got low={self.low:g}")

    def _span(self) -> tuple[float, float]:
        return (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise SpaceError(f"expected a number, got {value!r}")
        value = float(value)
        tol = 1e-12 * max(1.0, abs(self.high - self.low))
        if math.isnan(value) or not (self.low - tol <= value <= self.high + tol):
            raise SpaceError(f"{value:g} is outside [{self.low:g}, {self.high:g}]")
        return min(max(value, self.low), self.high)

    def grid(self, n: int) -> list[float]:
        if n == 1:
            return [self.decode(0.5)]
        a, b = self._span()
        points = np.linspace(a, b, n)
        return [float(np.exp(p)) if self.log else float(p) for p in points]

    def encode(self, value: float) -> float:
        a, b = self._span()
        x = math.log(value) if self.log else value
        return min(max((x - a) / (b - a), 0.0), 1.0)

    def decode(self, u: float) -> float:
        a, b = self._span()
        x = a + min(max(u, 0.0), 1.0) * (b - a)
        return min(max(math.exp(x) if self.log else x, self.low), self.high)

    def parse(self, text: str) -> float:
        value = _number(text, "value")
        if not math.isfinite(value):
            raise SpaceError(f"value must be a finite number, got {text!r}")
        return value

    def to_dict(self) -> dict:
        return self._with_when({"type": "float", "low": self.low, "high": self.high, "log": self.log})


@dataclass(frozen=True)
class Int(Param):
    """An integer in [low, high] on a `step` grid, sampled uniformly or log-uniformly."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("low", "high", "step"):
            value = _number(getattr(self, name), name)
            if value != int(value):
                raise SpaceError(f"{name} must be an integer, got {value:g}")
            object.__setattr__(self, name, int(value))
        if not self.low < self.high:
            raise SpaceError(f"low ({self.low}) must be below high ({self.high})")
        if self.step < 1:
            raise SpaceError(f"step must be >= 1, got {self.step}")
        if self.log and self.low <= 0:
            raise SpaceError(f"log scale needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise SpaceError("log scale and step > 1 cannot be combined")
        object.__setattr__(self, "high", self.low + (self.high - self.low) // self.step * self.step)

    @property
    def count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number) or value != int(value):
            raise SpaceError(f"expected an integer, got {value!r}")
        value = int(value)
        if not self.low <= value <= self.high or (value - self.low) % self.step:
            raise SpaceError(f"{value} is outside {self.low}..{self.high} (step {self.step})")
        return value

    def grid(self, n: int) -> list[int]:
        if self.count <= n:
            return list(range(self.low, self.high + 1, self.step))
        us = [0.5] if n == 1 else np.linspace(0.0, 1.0, n)
        if self.log:  # log-spaced values, rounded: reach both ends exactly
            points = np.exp(np.linspace(math.log(self.low), math.log(self.high), n)) if n > 1 else [self.decode(0.5)]
            values = [int(round(p)) for p in points]
        else:
            values = [self.low + int(round(u * (self.count - 1))) * self.step for u in us]
        return sorted(set(values))

    def encode(self, value: int) -> float:
        if self.log:
            a, b = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return (math.log(value) - a) / (b - a)
        return ((value - self.low) / self.step + 0.5) / self.count

    def decode(self, u: float) -> int:
        u = min(max(u, 0.0), 1.0)
        if self.log:
            a, b = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return min(max(int(round(math.exp(a + u * (b - a)))), self.low), self.high)
        return self.low + min(int(u * self.count), self.count - 1) * self.step

    def parse(self, text: str) -> int:
        value = _number(text, "value")
        if value != int(value):
            raise SpaceError(f"expected an integer, got {text!r}")
        return int(value)

    def to_dict(self) -> dict:
        d = {"type": "int", "low": self.low, "high": self.high, "log": self.log}
        if self.step != 1:
            d["step"] = self.step
        return self._with_when(d)


@dataclass(frozen=True)
class Categorical(Param):
    """One of a list of choices (strings, numbers or booleans)."""

    choices: tuple

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.choices, str) or not isinstance(self.choices, Sequence):
            raise SpaceError(f"choices must be a list, got {self.choices!r}")
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise SpaceError("choices must not be empty")
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise SpaceError(f"choices must be distinct, got {list(self.choices)}")

    def validate(self, value: Any) -> Any:
        for choice in self.choices:
            if value == choice and type(value) is type(choice) or value is choice:
                return choice
        for choice in self.choices:  # 3 == 3.0, numpy scalars
            if not isinstance(value, bool) and not isinstance(choice, bool) and value == choice:
                return choice
        raise SpaceError(f"{value!r} is not one of {list(self.choices)}")

    def grid(self, n: int) -> list:
        return list(self.choices)

    def encode(self, value: Any) -> float:
        return (self.choices.index(self.validate(value)) + 0.5) / len(self.choices)

    def decode(self, u: float) -> Any:
        k = len(self.choices)
        return self.choices[min(int(min(max(u, 0.0), 1.0) * k), k - 1)]

    def parse(self, text: str) -> Any:
        for choice in self.choices:
            if str(choice) == text:
                return choice
        return self.validate(yaml.safe_load(text))

    def to_dict(self) -> dict:
        return self._with_when({"type": "categorical", "choices": list(self.choices)})


@dataclass(frozen=True)
class Fixed(Param):
    """A constant: part of every params dict, never searched."""

    value: Any

    def __post_init__(self) -> None:
        super().__post_init__()

    def sample(self, rng: np.random.Generator) -> Any:
        return self.value

    def validate(self, value: Any) -> Any:
        if value != self.value:
            raise SpaceError(f"{value!r} differs from the fixed value {self.value!r}")
        return self.value

    def grid(self, n: int) -> list:
        return [self.value]

    def encode(self, value: Any) -> float:
        return 0.5

    def decode(self, u: float) -> Any:
        return self.value

    def parse(self, text: str) -> Any:
        return self.value if str(self.value) == text else yaml.safe_load(text)

    def to_dict(self) -> dict:
        return self._with_when({"type": "fixed", "value": self.value})


_KINDS: dict[str, tuple[type[Param], set[str]]] = {
    "float": (Float, {"low", "high", "log"}),
    "int": (Int, {"low", "high", "log", "step"}),
    "categorical": (Categorical, {"choices"}),
    "fixed": (Fixed, {"value"}),
}


def param_from_spec(spec: Any) -> Param:
    """Build a parameter from a file/dict spec: a mapping with `type`, a list (categorical) or a scalar (fixed)."""
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, list | tuple):
        return Categorical(tuple(spec))
    if not isinstance(spec, Mapping):
        return Fixed(spec)
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind is None:
        kind = "categorical" if "choices" in spec else "fixed" if "value" in spec else None
    if kind not in _KINDS:
        raise SpaceError(f"unknown type {kind!r} (expected one of {', '.join(_KINDS)})")
    cls, keys = _KINDS[kind]
    unknown = set(spec) - keys - {"when"}
    if unknown:
        raise SpaceError(
            f"unknown key {sorted(unknown)[0]!r} for a {kind} parameter (expected {', '.join(sorted(keys | {'when'}))})"
        )
    if kind == "categorical":
        spec["choices"] = tuple(spec.get("choices") or ())
    try:
        return cls(**spec)
    except TypeError as exc:
        raise SpaceError(f"incomplete {kind} parameter: {exc}") from None


class Space(Mapping[str, Param]):
    """An ordered, validated mapping of parameter name -> `Param`."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self._params: dict[str, Param] = {}
        for name, spec in (params or {}).items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"parameter names must be non-empty strings, got {name!r}")
            try:
                self._params[name] = param_from_spec(spec)
            except SpaceError as exc:
                raise SpaceError(f"parameter {name!r}: {exc}") from None
        self._check_conditions()
        self.tunable_names: tuple[str, ...] = tuple(n for n, p in self._params.items() if not isinstance(p, Fixed))

    def _check_conditions(self) -> None:
        seen: set[str] = set()
        for name, param in self._params.items():
            for parent, values in (param.when or {}).items():
                if parent not in self._params:
                    raise SpaceError(f"parameter {name!r}: condition on unknown parameter {parent!r}")
                if parent not in seen:
                    raise SpaceError(f"parameter {name!r}: its condition parameter {parent!r} must come before it")
                for value in values:
                    try:
                        self._params[parent].validate(value)
                    except SpaceError as exc:
                        raise SpaceError(f"parameter {name!r}: condition value for {parent!r}: {exc}") from None
            seen.add(name)

    # Mapping protocol
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self._params == other._params

    __hash__ = None  # type: ignore[assignment]

    # Construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        if not isinstance(data, Mapping):
            raise SpaceError(f"a space must be a mapping of name -> parameter, got {type(data).__name__}")
        if set(data) == {"space"} and isinstance(data["space"], Mapping):
            data = data["space"]
        return cls(data)

    @classmethod
    def load(cls, path: str | Path) -> Space:
        """Read a space from a YAML (.yaml/.yml) or TOML (.toml) file."""
        path = Path(path)
        try:
            text = _text(path.read_bytes(), path)
        except OSError as exc:
            raise SpaceError(f"cannot read space file {str(path)!r}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise SpaceError(
                f"space file {str(path)!r} is not valid {path.suffix.lstrip('.') or 'YAML'}: {first}"
            ) from None
        if not data:
            raise SpaceError(f"space file {str(path)!r} defines no parameters")
        try:
            return cls.from_dict(data)
        except SpaceError as exc:
            raise SpaceError(f"space file {str(path)!r}: {exc}") from None

    def to_dict(self) -> dict[str, dict]:
        return {name: param.to_dict() for name, param in self._params.items()}

    def override(self, name: str, text: str) -> Space:
        """Apply a `--set name=value` override: pin a value, narrow a range (`low..high`) or choices (`a,b`)."""
        if name not in self._params:
            raise SpaceError(f"--set {name}: unknown parameter; the space has {', '.join(self._params) or 'none'}")
        param = self._params[name]
        try:
            if ".." in text and isinstance(param, Float | Int):
                low, high = (param.parse(t.strip()) for t in text.split("..", 1))
                new: Param = replace(param, low=low, high=high)
            elif "," in text and isinstance(param, Categorical):
                new = replace(param, choices=tuple(param.parse(t.strip()) for t in text.split(",")))
            else:
                new = Fixed(param.parse(text.strip()), when=param.when)
        except SpaceError as exc:
            raise SpaceError(f"--set {name}={text}: {exc}") from None
        return Space(_prune_conditions({**self._params, name: new}))

    # Conditions
    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        when = self._params[name].when
        if not when:
            return True
        return all(parent in params and params[parent] in values for parent, values in when.items())

    # Operations
    def sample(self, rng: np.random.Generator) -> Params:
        params: Params = {}
        for name, param in self._params.items():
            if self.is_active(name, params):
                params[name] = param.sample(rng)
        return params

    def validate(self, params: Mapping[str, Any]) -> Params:
        """Check names and values, coerce types, drop parameters whose condition does not hold."""
        unknown = set(params) - set(self._params)
        if unknown:
            raise SpaceError(f"unknown parameter {sorted(unknown)[0]!r}; the space has {', '.join(self._params)}")
        out: Params = {}
        for name, param in self._params.items():
            if not self.is_active(name, out):
                continue
            if name not in params:
                if isinstance(param, Fixed):
                    out[name] = param.value
                    continue
                raise SpaceError(f"parameter {name!r} is missing")
            try:
                out[name] = param.validate(params[name])
            except SpaceError as exc:
                raise SpaceError(f"parameter {name!r}: {exc}") from None
        return out

    def parse(self, raw: Mapping[str, str]) -> Params:
        """Rebuild typed params from strings (MLflow stores params as text)."""
        return self.validate({k: self._params[k].parse(v) for k, v in raw.items() if k in self._params})

    def grid(self, n: int = 5) -> Iterator[Params]:
        """Every combination, `n` points per continuous axis; inactive parameters are not expanded."""
        if n < 1:
            raise SpaceError(f"grid resolution must be >= 1, got {n}")
        names = list(self._params)
        axes = {name: self._params[name].grid(n) for name in names}

        def expand(i: int, partial: Params) -> Iterator[Params]:
            if i == len(names):
                yield dict(partial)
                return
            name = names[i]
            if not self.is_active(name, partial):
                yield from expand(i + 1, partial)
                return
            for value in axes[name]:
                partial[name] = value
                yield from expand(i + 1, partial)
            del partial[name]

        return expand(0, {})

    def grid_size(self, n: int = 5) -> int:
        """Number of grid points, without building them: only the parameters tied by conditions are
        walked; every other one multiplies the count."""
        tied = {name for name, p in self._params.items() if p.when}
        tied |= {parent for p in self._params.values() for parent in (p.when or {})}
        free = math.prod(len(p.grid(n)) for name, p in self._params.items() if name not in tied)
        if not tied:
            return free
        return free * sum(1 for _ in Space({k: p for k, p in self._params.items() if k in tied}).grid(n))

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map params to [0, 1]^d over the tunable parameters; an inactive parameter encodes as 0.5."""
        return np.array(
            [self._params[n].encode(params[n]) if n in params else 0.5 for n in self.tunable_names], dtype=float
        )

    def decode(self, u: Sequence[float] | np.ndarray) -> Params:
        """Map a point of [0, 1]^d back to params, dropping parameters whose condition does not hold."""
        if len(u) != len(self.tunable_names):
            raise SpaceError(f"expected a point with {len(self.tunable_names)} coordinates, got {len(u)}")
        coords = dict(zip(self.tunable_names, u, strict=True))
        params: Params = {}
        for name, param in self._params.items():
            if self.is_active(name, params):
                params[name] = param.value if isinstance(param, Fixed) else param.decode(float(coords[name]))
        return params


def _prune_conditions(params: dict[str, Param]) -> dict[str, Param]:
    """After a parent was pinned or narrowed: drop condition values it can no longer take, and
    parameters that can therefore never be active (and, in turn, their dependents)."""
    out: dict[str, Param] = {}
    for name, param in params.items():
        when = {}
        for parent, values in (param.when or {}).items():
            kept = [v for v in values if parent in out and _accepts(out[parent], v)]
            when[parent] = kept
        if any(not kept for kept in when.values()):
            continue
        out[name] = replace(param, when=when) if when else param
    return out


def _accepts(param: Param, value: Any) -> bool:
    try:
        param.validate(value)
    except SpaceError:
        return False
    return True


def as_space(space: Space | Mapping[str, Any] | str | Path | None) -> Space | None:
    """Accept a Space, a dict spec or a path to a YAML/TOML file."""
    if space is None or isinstance(space, Space):
        return space
    if isinstance(space, str | Path):
        return Space.load(space)
    return Space.from_dict(space)


__all__ = ["Categorical", "Fixed", "Float", "Int", "Param", "Params", "Space", "as_space"]
