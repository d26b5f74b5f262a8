"""Backends: what a trial evaluates. Also adapts a plain Python callable into a backend."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hpt.space import Params, Space
from hpt.trial import Direction

OBJECTIVE = "objective"
"""The metric name the final objective value is logged under in every study, whatever the backend."""
REPORTED = "value"
"""The metric name of numbers reported without a name (`ctx.report(step, 0.3)`)."""


@dataclass
class Result:
    """What an evaluation returns: the objective value(s) and any other final metrics."""

    value: float | Sequence[float]
    metrics: dict[str, float] = field(default_factory=dict)


class TrialPruned(Exception):  # noqa: N818 - reads as an event, like StopIteration
    """Raised by an objective (or by `TrialContext.report`'s caller) to end a trial early as pruned."""


class TrialContext:
    """Handed to a running evaluation: report intermediate metrics, ask whether to stop early,
    find where to keep a checkpoint so that a later, larger budget continues instead of restarting."""

    def __init__(
        self,
        number: int,
        budget: float | None = None,
        seed: int | None = None,
        checkpoint_dir: Path | None = None,
        metric: str = REPORTED,
        stop_rule: Callable[[int, Mapping[str, float]], bool] | None = None,
        run_id: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.number = number
        self.budget = budget
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.metric = metric
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.in_run: set[tuple[int, str]] = set()
        """(step, metric) points the evaluation logged into the trial's run itself."""
        self._stop_rule = stop_rule
        self.run_id = run_id
        """The trial's MLflow child run, when the backend asks for it (`Backend.needs_trial_run`) and the
        study is tracked; what the evaluation logs there lands beside what hpt logs."""
        self.tracking_uri = tracking_uri
        """The store `run_id` lives in."""

    def report(self, step: int, metrics: Mapping[str, float] | float, *, in_run: bool = False) -> None:
        """Record metrics at `step` (an epoch); they are logged to MLflow with that step. `in_run`: the
        evaluation logged them into the trial's run itself (`run_id`), so hpt does not log them again."""
        values = {self.metric: float(metrics)} if isinstance(metrics, int | float) else dict(metrics)
        self.reports.append((int(step), {k: float(v) for k, v in values.items()}))
        if in_run:
            self.in_run.update((int(step), k) for k in values)

    def should_stop(self) -> bool:
        """Whether the strategy's pruning rule asks this trial to stop after its last report."""
        if self._stop_rule is None or not self.reports:
            return False
        step, metrics = self.reports[-1]
        return bool(self._stop_rule(step, metrics))


class Backend(ABC):
    """Something to tune: a default search space and an `evaluate` method.

    Subclasses take their options as keyword arguments to `__init__` (the CLI passes
    `--dataset`, `--function`, ... through) and must be picklable: they are shipped once to
    each worker process.
    """

    name: ClassVar[str] = ""
    metric: str = REPORTED
    """The reported metric the objective is measured on (what pruning compares), e.g. `valid_loss`."""
    direction: Direction = "minimize"
    needs_trial_run: ClassVar[bool] = False
    """Whether `evaluate` writes into the trial's MLflow run itself (a script that logs to MLflow): then a
    tracked study creates the child run before the trial starts and passes it as `ctx.run_id`."""

    @property
    def directions(self) -> tuple[str, ...]:
        """One direction per objective; a multi-objective backend returns several."""
        return (self.direction,)

    @abstractmethod
    def default_space(self) -> Space:
        """The space searched when the user gives none."""

    @abstractmethod
    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> Result | float | Sequence[float]:
        """Train/evaluate one configuration and return its objective value(s)."""

    def evaluate_batch(
        self, params: Sequence[Params], budgets: Sequence[float | None], ctxs: Sequence[TrialContext]
    ) -> list[Any]:
        """Evaluate several configurations at once (`--batch-trials`). Returns one entry per member: what
        `evaluate` would return, or the exception it raised (`TrialPruned` for a pruned member).

        This default evaluates them one after another; a backend that can train many models as one
        (population training) overrides it."""
        out: list[Any] = []
        for member_params, budget, ctx in zip(params, budgets, ctxs, strict=True):
            try:
                out.append(self.evaluate(member_params, budget, ctx))
            except Exception as exc:  # one member failing must not fail the others
                out.append(exc)
        return out

    def auto_batch_trials(self) -> int:
        """How many trials `--batch-trials auto` evaluates as one batch: 1 (none) unless `evaluate_batch`
        pays off on this backend's device."""
        return 1

    def describe(self) -> str:
        """A short readable label for run names, e.g. `mlp-digits` or `function-branin`."""
        return self.name

    def tags(self) -> dict[str, str]:
        """MLflow tags for the study's parent run (e.g. `hpt.dataset`)."""
        return {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Backend:
        backend = super().__new__(cls)
        backend._given_options = _given_options(cls, args, kwargs)
        return backend

    def options(self) -> dict[str, Any]:
        """The options this backend was built with, recorded so that a resumed study builds it the same way:
        by default the arguments its constructor was given (a subclass never has to repeat them)."""
        return dict(getattr(self, "_given_options", {}))

    def final_report(self, params: Params, seed: int | None, checkpoint_dir: Path | None = None) -> dict[str, float]:
        """Metrics computed once for the best trial at the end of a study (e.g. a test score).
        `checkpoint_dir` is where that trial kept its checkpoint, if it did and it is reachable here."""
        return {}

    def save_model(self, params: Params, checkpoint_dir: Path | None, path: Path) -> bool:
        """Write the best trial's trained model as an MLflow model directory at `path` (`mlflow.pyfunc`
        or a flavour's `save_model`), from the checkpoint it kept in `checkpoint_dir`: no retraining.
        The study logs it on its parent run as `model`. Returns False when the backend has no model
        to save (this default, e.g. a test function) or the checkpoint is gone."""
        return False


class CallableBackend(Backend):
    """Wraps `objective(params)` or `objective(params, ctx)` so a plain function can be tuned."""

    name = "callable"

    def __init__(self, objective: Callable[..., Any], space: Space | None = None) -> None:
        self.objective = objective
        self._space = space
        self._takes_ctx = _accepts_two_args(objective)

    def default_space(self) -> Space:
        if self._space is None:
            raise ValueError("a plain objective function needs a space: pass space=...")
        return self._space

    def describe(self) -> str:
        return getattr(self.objective, "__name__", "objective").strip("<>")

    def options(self) -> dict[str, Any]:
        return {}  # a function is not an option: a resumed callable study is given the callable again

    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> Any:
        return self.objective(params, ctx) if self._takes_ctx else self.objective(params)


def _given_options(cls: type, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments by name (`**options` spread out); empty when they do not bind, where
    `__init__` itself then reports the mistake."""
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(None, *args, **kwargs)
    except TypeError:
        return {}
    out: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            out[name] = value
    return out


def _accepts_two_args(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    return has_varargs or len(positional) >= 2
