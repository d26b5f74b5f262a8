"""Pruning for full-budget strategies: stop a trial whose learning curve is already worse than
the median of earlier trials at the same step (`--prune median`).

The rule handed to a trial is a picklable snapshot taken when the trial starts, so it works the
same in-process, in worker processes and on a dask cluster.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hpt.errors import HptError
from hpt.trial import Trial, TrialState, better


@dataclass(frozen=True)
class MedianRule:
    """Stop at `step` when the metric is worse than `medians[step]` (after `warmup` steps)."""

    medians: Mapping[int, float]
    metric: str
    direction: str
    warmup: int

    def __call__(self, step: int, metrics: Mapping[str, float]) -> bool:
        if step < self.warmup or self.metric not in metrics or step not in self.medians:
            return False
        return better(self.medians[step], metrics[self.metric], self.direction)


class MedianPruner:
    """The median stopping rule: needs `min_trials` earlier curves at a step before judging it."""

    def __init__(self, warmup_steps: int = 2, min_trials: int = 3) -> None:
        self.warmup_steps = int(warmup_steps)
        self.min_trials = int(min_trials)

    def rule(self, trials: Iterable[Trial], metric: str, direction: str) -> MedianRule | None:
        per_step: dict[int, list[float]] = {}
        for trial in trials:
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                for step, metrics in trial.intermediate:
                    if metric in metrics:
                        per_step.setdefault(step, []).append(metrics[metric])
        medians = {s: statistics.median(v) for s, v in per_step.items() if len(v) >= self.min_trials}
        return MedianRule(medians, metric, direction, self.warmup_steps) if medians else None


PRUNERS = {"median": MedianPruner}


def make_pruner(name: str | None, **options: int) -> MedianPruner | None:
    """`none` (or None) disables pruning; otherwise a pruner from PRUNERS."""
    if name in (None, "none"):
        return None
    if name not in PRUNERS:
        raise HptError(f"unknown pruner {name!r}; available: none, {', '.join(PRUNERS)}")
    return PRUNERS[name](**options)
