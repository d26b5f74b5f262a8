"""The worker side of a trial: run one evaluation and turn whatever happens into an outcome.

Everything here is picklable so that the same code runs in-process, in a process pool or on
a dask worker. Exceptions and non-finite values never escape: they become failed outcomes.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.space import Params
from hpt.trial import TrialState, as_values


@dataclass
class TrialTask:
    """What a worker needs to evaluate one trial."""

    number: int
    params: Params
    budget: float | None = None
    seed: int | None = None
    checkpoint_dir: Path | None = None
    n_objectives: int = 1
    timeout: float | None = None
    stop_rule: Callable[[int, Mapping[str, float]], bool] | None = None


@dataclass
class TrialOutcome:
    """What came back from a worker."""

    state: TrialState
    values: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    intermediate: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0


def _error_line(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def evaluate_trial(backend: Backend, task: TrialTask) -> TrialOutcome:
    """Evaluate `task` with `backend`; never raises (except KeyboardInterrupt)."""
    ctx = TrialContext(
        task.number, task.budget, task.seed, task.checkpoint_dir, metric=backend.metric, stop_rule=task.stop_rule
    )
    start = time.perf_counter()
    try:
        raw: Any = backend.evaluate(task.params, task.budget, ctx)
        result = raw if isinstance(raw, Result) else Result(raw)
        values = as_values(result.value, task.n_objectives)
        outcome = TrialOutcome(TrialState.COMPLETE, values, dict(result.metrics), ctx.reports)
    except TrialPruned:
        last = ctx.reports[-1][1].get(backend.metric) if ctx.reports else None
        outcome = TrialOutcome(
            TrialState.PRUNED, [last] if last is not None and task.n_objectives == 1 else None, {}, ctx.reports
        )
    except Exception as exc:  # a failing trial is recorded as failed and the study goes on
        outcome = TrialOutcome(TrialState.FAILED, None, {}, ctx.reports, error=_error_line(exc))
    outcome.duration = time.perf_counter() - start
    return outcome
