"""What a store (and this machine's journal) holds about a study: enough to show it or resume it.

Resume must never refuse a study over what a crash or an outage left behind. A trial number may be
missing (its run was never created), appear twice (a create whose answer was lost), have no
parameters (killed between creating its run and logging them), or be newer in the journal than in the
store; the record is rebuilt from whatever is there, the journal winning over the store because every
write reaches the journal first.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt.backend import OBJECTIVE
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.journal import Journal
from hpt.space import Space
from hpt.trial import INTERRUPTED, LOST, REQUEUED, Trial, TrialState

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

CONFIG_ARTIFACT = "config.json"
SPACE_ARTIFACT = "space.json"
ELAPSED_TAG = "hpt.elapsed_s"
"""Seconds the study has run, summed over its resumes (the time it was stopped is not counted)."""


NO_PARAMS = "interrupted before its parameters were recorded"


def objective_names(n: int) -> list[str]:
    """Metric names of the objectives: `objective`, then `objective_1`, ... for more than one."""
    return [OBJECTIVE] + [f"{OBJECTIVE}_{i}" for i in range(1, n)]


@dataclass
class StudyRecord:
    """A study as the store and the journal hold it: config, space, trials (numbered 0..n-1, gaps filled)."""

    run_id: str
    config: StudyConfig
    space: Space
    trials: list[Trial]
    interrupted: list[Trial]
    """Trials that were running when the study stopped: resume runs their configurations again."""
    child_run_ids: dict[int, str]
    unterminated: list[Trial]
    """Finished trials whose run status never reached the store (the process died in between)."""
    cut_promotions: list[Trial]
    """Trials whose promotion to a larger budget was interrupted: restored at the budget they finished."""
    experiment_id: str = ""
    elapsed: float = 0.0
    lost: list[int] = field(default_factory=list)
    """Trial numbers nothing is known of (filled with failed placeholders)."""
    journal: Journal | None = None
    name: str = ""
    parent_tags: dict[str, str] = field(default_factory=dict)
    parent_metrics: dict[str, float] = field(default_factory=dict)
    """The parent run's latest metrics: `best_objective` and the best trial's test scores."""


def load_study(run_id: str, tracking_uri: str | None = None, journal: Journal | None = None) -> StudyRecord:
    """Rebuild a study's config and trials from its MLflow runs and, where this machine has it, its journal."""
    from mlflow.exceptions import MlflowException

    from hpt.store_client import make_client

    client = make_client(tracking_uri)
    journal = journal or Journal.existing(run_id)
    header = (journal.header() if journal else None) or {}
    try:
        parent = client.get_run(run_id)
    except MlflowException as exc:
        raise HptError(f"cannot load study {run_id!r} from {client.tracking_uri}: {str(exc).splitlines()[0]}") from None
    config = StudyConfig.from_dict(_artifact(client, run_id, CONFIG_ARTIFACT, header.get("config")))
    space = Space.from_dict(_artifact(client, run_id, SPACE_ARTIFACT, header.get("space")))
    names = objective_names(len(config.directions or ["minimize"]))
    runs = _child_runs(client, parent.info.experiment_id, run_id)
    chosen: dict[int, Any] = {}
    for run in runs:
        number = _trial_number(run)
        if number is not None and (number not in chosen or _rank(run) > _rank(chosen[number])):
            chosen[number] = run
    trials = {number: _trial_from_run(run, space, names) for number, run in chosen.items()}
    requeued = {n for n, run in chosen.items() if run.data.tags.get("hpt.requeued") == "true"}
    for number, snapshot in (journal.trials() if journal else {}).items():
        trials[number] = Trial.from_record(snapshot)
    lost = [n for n in range(max(trials, default=-1) + 1) if n not in trials]
    for number in lost:
        trials[number] = Trial(number, {}, state=TrialState.FAILED, error=LOST)

    interrupted, unterminated, cut_promotions = [], [], []
    for number in sorted(trials):
        trial = trials[number]
        if not trial.params and trial.error != LOST:  # killed before its params were recorded: nothing to re-run
            trial.state, trial.error = TrialState.FAILED, NO_PARAMS
        was_interrupted = trial.state is TrialState.RUNNING or trial.error == INTERRUPTED
        if was_interrupted and len(trial.budget_history) > 1:  # a promotion cut short: back to its last rung
            trial.budget_history.pop()
            trial.budget, trial.error = trial.budget_history[-1], None
            trial.state = TrialState.COMPLETE if trial.values else TrialState.FAILED
            cut_promotions.append(trial)
        elif was_interrupted and number in requeued:
            trial.state, trial.error = TrialState.FAILED, REQUEUED
        elif was_interrupted and trial.params:
            trial.state, trial.error = TrialState.FAILED, INTERRUPTED
            interrupted.append(trial)
        elif was_interrupted:
            trial.state = TrialState.FAILED
        elif number in chosen and chosen[number].info.status == "RUNNING" and trial.state.finished:
            unterminated.append(trial)
    return StudyRecord(
        run_id,
        config,
        space,
        [trials[n] for n in sorted(trials)],
        interrupted,
        {n: run.info.run_id for n, run in chosen.items()},
        unterminated,
        cut_promotions,
        experiment_id=parent.info.experiment_id,
        elapsed=float(parent.data.tags.get(ELAPSED_TAG, 0.0) or 0.0),
        lost=lost,
        journal=journal,
        name=parent.info.run_name or header.get("name", ""),
        parent_tags=dict(parent.data.tags),
        parent_metrics=dict(parent.data.metrics),
    )


def _child_runs(client: MlflowClient, experiment_id: str, run_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _trial_number(run: Any) -> int | None:
    text = run.data.tags.get("hpt.trial") or (run.info.run_name or "").removeprefix("trial-")
    try:
        return int(text)
    except ValueError:
        return None


def _rank(run: Any) -> tuple:
    """Which of two runs of one trial number to believe: a finished one, then the one that holds more."""
    state = run.data.tags.get("hpt.state", "running")
    return (state != "running", run.info.status != "RUNNING", len(run.data.metrics), len(run.data.params))


def _trial_from_run(run: Any, space: Space, names: list[str]) -> Trial:
    tags, metrics = run.data.tags, run.data.metrics
    try:
        params = space.parse(run.data.params)
    except HptError:
        params = {}
    budget, history = tags.get("hpt.budget"), tags.get("hpt.budget_history")
    state_text = tags.get("hpt.state", "running")
    try:
        state = TrialState(state_text)
    except ValueError:
        state = TrialState.RUNNING
    return Trial(
        _trial_number(run) or 0,
        params,
        budget=None if budget in (None, "None") else float(budget),
        state=state,
        values=[metrics[n] for n in names] if all(n in metrics for n in names) else None,
        metrics={k: v for k, v in metrics.items() if k not in names},
        budget_history=[float(b) for b in history.split(",")] if history else [],
        duration=float(tags.get("hpt.duration", 0.0)),
        error=tags.get("hpt.error"),
    )


def _artifact(client: MlflowClient, run_id: str, path: str, fallback: dict | None) -> dict:
    """A JSON artifact of the parent run, or the journal's copy when the store never received it."""
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(client.download_artifacts(run_id, path, tmp)).read_text())
    except (MlflowException, OSError, ValueError) as exc:
        if fallback is not None:
            return fallback
        raise HptError(f"cannot load study {run_id!r}: its {path} is missing ({str(exc).splitlines()[0]})") from None


__all__ = ["CONFIG_ARTIFACT", "ELAPSED_TAG", "SPACE_ARTIFACT", "StudyRecord", "load_study", "objective_names"]
