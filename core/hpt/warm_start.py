"""Warm start: begin a new study from what an earlier one learnt.

    ws = load_warm_start(run_id, tracking_uri, study.space, study.backend.name, study.directions)
    study.warm_start(ws)          # before the first ask; then optimize as usual

The earlier study's finished trials (complete or pruned) whose parameters fit the new space are told to
the new study's strategy before it asks; the others (a narrowed range, a pinned or added parameter)
are skipped and counted. They are not trials of the new study: no child runs, not in `study.trials`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hpt.errors import HptError, SpaceError
from hpt.space import Space
from hpt.trial import Trial, TrialState


@dataclass
class WarmStart:
    """What a new study starts from: the source study's parent run id, its trials that fit the new space
    (numbered -1, -2, ... so they never collide with the new study's own trial numbers) and how many
    finished trials did not fit."""

    source_run_id: str
    trials: list[Trial] = field(default_factory=list)
    skipped: int = 0

    def summary(self) -> str:
        """One line for the run's output: `warm start from <id>: 12 trials told, 3 outside the space skipped`."""
        return (
            f"warm start from {self.source_run_id}: {len(self.trials)} trials told, "
            f"{self.skipped} outside the space skipped"
        )


def load_warm_start(
    run_id: str, tracking_uri: str | None, space: Space, backend_name: str, directions: Sequence[str]
) -> WarmStart:
    """The finished trials of the study logged under `run_id` that fit `space`. One clear line (HptError)
    for an unknown run id, a study of another backend, or one that optimised other objectives."""
    from hpt.tracking import load_study

    record = load_study(run_id, tracking_uri)
    source_backend = record.config.backend
    if source_backend != backend_name:
        raise HptError(
            f"cannot warm-start a {backend_name!r} study from run {run_id}: that study tuned backend "
            f"{source_backend!r}; pick a study of the same backend (`hpt studies`)"
        )
    source_directions = list(record.config.directions or ["minimize"])
    if source_directions != list(directions):
        raise HptError(
            f"cannot warm-start from run {run_id}: it optimised {', '.join(source_directions)}, this study "
            f"{', '.join(directions)}; use the same --metric"
        )
    fitting: list[Trial] = []
    skipped = 0
    for trial in record.trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED) or not trial.params:
            continue
        try:
            params = space.validate(trial.params)
        except SpaceError:
            skipped += 1
            continue
        fitting.append(replace(trial, number=-1 - len(fitting), params=params))
    return WarmStart(run_id, fitting, skipped)


__all__ = ["WarmStart", "load_warm_start"]
