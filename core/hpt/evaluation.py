"""The worker side of a trial: run one evaluation and turn whatever happens into an outcome.

Everything here is picklable so that the same code runs in-process, in a process pool or on
a dask worker. Exceptions and non-finite values never escape: they become failed outcomes. A trial
whose checkpoint lives at a URL (`hpt.checkpoints`) is evaluated in a local copy of it, written back after.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.checkpoints import CheckpointError, working_dir
from hpt.space import Params
from hpt.trial import TrialState, as_values


@dataclass
class TrialTask:
    """What a worker needs to evaluate one trial."""

    number: int
    params: Params
    budget: float | None = None
    seed: int | None = None
    checkpoint_dir: Path | str | None = None
    """Where the trial keeps its checkpoint: a path, or a URL of shared storage (staged through a local copy)."""
    n_objectives: int = 1
    timeout: float | None = None
    stop_rule: Callable[[int, Mapping[str, float]], bool] | None = None
    run_id: str | None = None
    """The trial's MLflow run, for a backend that logs into it itself (`Backend.needs_trial_run`)."""
    tracking_uri: str | None = None


@dataclass
class TrialOutcome:
    """What came back from a worker."""

    state: TrialState
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    intermediate: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0
    in_run: list[tuple[int, str]] = field(default_factory=list)
    """(step, metric) points the evaluation logged into the trial's MLflow run itself."""


def _error_line(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


@dataclass
class BatchTask:
    """Several trials a backend evaluates together (population training: one stacked model)."""

    tasks: list[TrialTask]

    @property
    def number(self) -> int:
        """The first member's trial number (what runners name a task by)."""
        return self.tasks[0].number

    @property
    def timeout(self) -> float | None:
        """Members train side by side, so a batch gets one member's time limit."""
        return self.tasks[0].timeout


def _context(backend: Backend, task: TrialTask, checkpoint_dir: Path | None) -> TrialContext:
    return TrialContext(
        task.number,
        task.budget,
        task.seed,
        checkpoint_dir,
        metric=backend.metric,
        stop_rule=task.stop_rule,
        run_id=task.run_id,
        tracking_uri=task.tracking_uri,
    )


def _outcome(backend: Backend, task: TrialTask, ctx: TrialContext, raw: Any) -> TrialOutcome:
    """Turn what an evaluation returned (or raised: pass the exception) into an outcome."""
    outcome = _outcome_of(backend, task, ctx, raw)
    outcome.in_run = sorted(ctx.in_run)
    return outcome


def _outcome_of(backend: Backend, task: TrialTask, ctx: TrialContext, raw: Any) -> TrialOutcome:
    if isinstance(raw, TrialPruned):
        last = ctx.reports[-1][1].get(backend.metric) if ctx.reports else None
        values = [last] if last is not None and task.n_objectives == 1 else None
        return TrialOutcome(TrialState.PRUNED, values, {}, ctx.reports)
    if isinstance(raw, Exception):
        return TrialOutcome(TrialState.FAILED, None, {}, ctx.reports, error=_error_line(raw))
    result = raw if isinstance(raw, Result) else Result(raw)
    try:
        values = as_values(result.value, task.n_objectives)
    except (TypeError, ValueError) as exc:
        return TrialOutcome(TrialState.FAILED, None, {}, ctx.reports, error=_error_line(exc))
    return TrialOutcome(TrialState.COMPLETE, values, dict(result.metrics), ctx.reports)


def evaluate_trial(backend: Backend, task: TrialTask | BatchTask) -> TrialOutcome | list[TrialOutcome]:
    """Evaluate a trial (or a batch of them) with `backend`; never raises (except KeyboardInterrupt)."""
    if isinstance(task, BatchTask):
        return _evaluate_batch(backend, task)
    start = time.perf_counter()
    try:
        with working_dir(task.checkpoint_dir) as checkpoint_dir:
            ctx = _context(backend, task, checkpoint_dir)
            try:
                raw: Any = backend.evaluate(task.params, task.budget, ctx)
            except Exception as exc:  # a failing trial is recorded as failed and the study goes on
                raw = exc
            outcome = _outcome(backend, task, ctx, raw)
    except CheckpointError as exc:  # its checkpoint could not be fetched or stored: a promotion would restart
        outcome = TrialOutcome(TrialState.FAILED, error=str(exc))
    outcome.duration = time.perf_counter() - start
    return outcome


def _evaluate_batch(backend: Backend, batch: BatchTask) -> list[TrialOutcome]:
    start = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            local = [stack.enter_context(working_dir(task.checkpoint_dir)) for task in batch.tasks]
            ctxs = [_context(backend, task, path) for task, path in zip(batch.tasks, local, strict=True)]
            try:
                raws = backend.evaluate_batch([t.params for t in batch.tasks], [t.budget for t in batch.tasks], ctxs)
            except Exception as exc:  # the whole batch failed: every member fails with the reason
                raws = [exc] * len(batch.tasks)
            outcomes = [_outcome(backend, t, ctx, raw) for t, ctx, raw in zip(batch.tasks, ctxs, raws, strict=True)]
    except CheckpointError as exc:
        outcomes = [TrialOutcome(TrialState.FAILED, error=str(exc)) for _ in batch.tasks]
    duration = time.perf_counter() - start
    for outcome in outcomes:
        outcome.duration = duration
    return outcomes
