"""Trials and the suggestions that create them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Direction = Literal["minimize", "maximize"]
DIRECTIONS: tuple[str, ...] = ("minimize", "maximize")
INTERRUPTED = "interrupted before it finished"
"""The error of a trial that was running when its study was stopped (Ctrl-C, a kill); resume re-runs it."""
REQUEUED = "interrupted before it finished; run again as a new trial"
"""The error of an interrupted trial once a resume has queued its configuration again."""
LOST = "no record of this trial survived"
"""The error of a trial number that neither the store nor the journal holds (resume fills the gap)."""
NOT_COUNTED = (INTERRUPTED, REQUEUED, LOST)
"""Errors of trials that did not fail by themselves: they count neither as failures nor as done."""


class TrialState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


@dataclass
class Suggestion:
    """What a strategy proposes: params, a budget (fidelity, e.g. epochs) and, for a promotion,
    the number of the trial it continues."""

    params: dict[str, Any]
    budget: float | None = None
    continues: int | None = None


@dataclass
class Trial:
    """One configuration and everything known about its evaluation.

    A promoted trial (successive halving, hyperband) keeps its number and MLflow run and gains
    budget: `budget_history` lists every budget it was evaluated at.
    """

    number: int
    params: dict[str, Any]
    budget: float | None = None
    state: TrialState = TrialState.PENDING
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    intermediate: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    budget_history: list[float] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    duration: float = 0.0
    error: str | None = None
    in_run: list[tuple[int, str]] = field(default_factory=list)
    """(step, metric) points the evaluation logged into the trial's MLflow run itself (a script that logs to
    MLflow): the tracker does not log them again."""

    @property
    def value(self) -> float | None:
        """The (first) objective value, or None when the trial produced none."""
        return self.values[0] if self.values else None

    @property
    def last_step(self) -> int | None:
        return self.intermediate[-1][0] if self.intermediate else None

    def to_record(self) -> dict[str, Any]:
        """The trial as plain JSON-able data (what the journal keeps)."""
        record = dataclasses.asdict(self)
        record["state"] = self.state.value
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Trial:
        """The trial `to_record` wrote."""
        fields = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in record.items() if k in fields}
        data["state"] = TrialState(data.get("state", "failed"))
        data["intermediate"] = [(int(step), dict(metrics)) for step, metrics in data.get("intermediate", [])]
        data["in_run"] = [(int(step), str(key)) for step, key in data.get("in_run", [])]
        return cls(**data)


def better(a: float, b: float, direction: str) -> bool:
    """Whether value `a` is strictly better than `b` under `direction`."""
    return a < b if direction == "minimize" else a > b


def beats(trial: Trial, incumbent: Trial | None, direction: str) -> bool:
    """Whether complete `trial` should replace `incumbent` as the best trial: the larger budget first
    (a lucky value after one epoch does not beat one measured after fifty), then the better value."""
    if trial.state is not TrialState.COMPLETE or trial.value is None:
        return False
    if incumbent is None:
        return True
    budget, best_budget = trial.budget or 0, incumbent.budget or 0
    return budget > best_budget or (budget == best_budget and better(trial.value, incumbent.value, direction))


def best_trial(trials: Iterable[Trial], directions: Sequence[str]) -> Trial | None:
    """The best complete trial on the first objective, by the rule of `beats` (the earliest of equals)."""
    best: Trial | None = None
    for trial in trials:
        if beats(trial, best, directions[0]):
            best = trial
    return best


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Pareto dominance: `a` is no worse than `b` on every objective and better on one."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    no_worse = all(s * x <= s * y for s, x, y in zip(signs, a, b, strict=True))
    return no_worse and any(s * x < s * y for s, x, y in zip(signs, a, b, strict=True))


def pareto_front(trials: Sequence[Trial], directions: Sequence[str]) -> list[Trial]:
    """Complete trials that no other complete trial dominates."""
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.values]
    return [t for t in done if not any(dominates(o.values, t.values, directions) for o in done if o is not t)]


def as_values(raw: Any, n_objectives: int) -> list[float]:
    """Normalise what an objective returned (a number or a sequence of numbers) to a list of floats."""
    if isinstance(raw, Mapping):
        raise TypeError("a metrics dict needs the objective metric name; return a Result or a number")
    values = [float(v) for v in raw] if isinstance(raw, Sequence) and not isinstance(raw, str) else [float(raw)]
    if len(values) != n_objectives:
        raise ValueError(f"the objective returned {len(values)} values for {n_objectives} objective(s)")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"the objective returned a non-finite value ({bad[0]})")
    return values
