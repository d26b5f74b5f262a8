"""The study loop: ask the strategy, run trials on a runner, tell results, notify observers.

Two ways to drive it: `optimize()` runs the loop (with parallel workers if the runner has
them), and `ask()` / `tell()` let users run training themselves.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt.backend import Backend
from hpt.checkpoints import Location, check_root, fetched, is_url, remove, trial_location
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.evaluation import BatchTask, TrialOutcome, TrialTask
from hpt.executors import Runner, SerialRunner
from hpt.observers import StudyObserver
from hpt.pruners import MedianPruner
from hpt.signals import deferred
from hpt.space import Params, Space
from hpt.strategy import Strategy
from hpt.trial import (
    INTERRUPTED,
    LOST,
    NOT_COUNTED,
    Suggestion,
    Trial,
    TrialState,
    as_values,
    beats,
    best_trial,
    pareto_front,
)

if TYPE_CHECKING:
    from hpt.tracking import MlflowTracker
    from hpt.warm_start import WarmStart

log = logging.getLogger(__name__)


class Study:
    """A search over `space` for `backend`, driven by `strategy`."""

    def __init__(
        self,
        backend: Backend,
        strategy: Strategy,
        *,
        space: Space,
        config: StudyConfig | None = None,
        runner: Runner | None = None,
        observers: Iterable[StudyObserver] = (),
        pruner: MedianPruner | None = None,
        clean_checkpoints: bool | None = None,
    ) -> None:
        self.config = config or StudyConfig()
        self.backend = backend
        self.strategy = strategy
        self.space = space
        self.directions = tuple(self.config.directions or backend.directions)
        self.seed = self.config.seed
        self.runner = runner or SerialRunner()
        self.runner.start(backend)
        self.observers = list(observers)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.name = self.config.name or f"{strategy.name or 'strategy'}-{backend.describe()}-{stamp}"
        self.max_failures = self.config.max_failures
        self.trial_timeout = self.config.trial_timeout
        self.pruner = pruner
        batch_trials = self.config.batch_trials
        self.batch_trials = batch_trials if batch_trials and batch_trials > 1 else None
        self.trials: list[Trial] = []
        self._best: Trial | None = None
        self.final_metrics: dict[str, float] = {}
        self._queue: deque[Suggestion] = deque()
        self._active: dict[int, Trial] = {}
        self._open = False
        self.warm_started: WarmStart | None = None
        # Checkpoints let a promoted trial continue; they outlive a killed study (resume continues from
        # them) and are removed when the study finishes, unless the caller chose where they live.
        root = self.config.checkpoint_root
        if is_url(root):  # shared storage every worker reaches (hpt.checkpoints); never removed by a study
            check_root(root)
            self.checkpoint_root: Location = root
        else:
            self.checkpoint_root = Path(root or tempfile.mkdtemp(prefix="hpt-checkpoints-"))
        cleaned = root is None if clean_checkpoints is None else clean_checkpoints
        self.clean_checkpoints = cleaned and not is_url(root)

    @property
    def tracker(self) -> MlflowTracker | None:
        """The observer that logs this study to MLflow, if it is tracked."""
        from hpt.tracking import MlflowTracker

        return next((o for o in self.observers if isinstance(o, MlflowTracker)), None)

    # Results
    @property
    def best_trial(self) -> Trial | None:
        """The best complete trial on the first objective (`hpt.trial.best_trial`: the largest budget
        first, so a lucky value after one epoch does not beat a measured one after fifty)."""
        if self._best is not None and self._best.state is not TrialState.COMPLETE:
            self._best = best_trial(self.trials, self.directions)
        return self._best

    def _consider(self, trial: Trial) -> None:
        if beats(trial, self._best, self.directions[0]):
            self._best = trial

    @property
    def best_value(self) -> float | None:
        return self.best_trial.value if self.best_trial else None

    @property
    def best_params(self) -> Params | None:
        return dict(self.best_trial.params) if self.best_trial else None

    def pareto_front(self) -> list[Trial]:
        """Complete trials that no other trial dominates (all objectives)."""
        return pareto_front(self.trials, self.directions)

    def counts(self) -> dict[str, int]:
        """Number of trials in each state."""
        out = {state.value: 0 for state in TrialState}
        for trial in self.trials:
            out[trial.state.value] += 1
        return out

    # Building up from earlier trials
    def enqueue(self, params: Mapping[str, Any], budget: float | None = None) -> None:
        """Evaluate these params next, before asking the strategy."""
        self._queue.append(Suggestion(self.space.validate(params), budget))

    def restore(self, trials: Iterable[Trial]) -> None:
        """Adopt finished trials from an earlier run (resume) and replay them through the strategy. A number
        nothing is known of becomes a failed placeholder; a number given twice keeps its first trial."""
        for trial in sorted(trials, key=lambda t: t.number):
            while len(self.trials) < trial.number:
                self.trials.append(Trial(len(self.trials), {}, state=TrialState.FAILED, error=LOST))
            if trial.number < len(self.trials):
                continue
            self.trials.append(trial)
            self._consider(trial)
            if trial.state.finished and trial.params:  # a trial killed before its params were logged has none
                self.strategy.tell(trial)

    def warm_start(self, warm: WarmStart) -> None:
        """Tell the strategy the trials of an earlier study (`hpt.warm_start.load_warm_start`) before it asks,
        so a model-based or evolutionary search starts from what was learnt. They do not become trials
        of this study (no child runs, not counted); their numbers are negative, and a multi-fidelity
        scheduler, which promotes trials by number, hands them to its sampler only."""
        if self._open or self.trials:
            raise HptError("warm-start a study before its first trial")
        self.strategy.warm_start(warm.trials)
        self.warm_started = warm

    # Ask / tell
    def ask(self) -> Trial:
        """Start one trial and return it; report back with `tell`."""
        self._ensure_open()
        suggestions = self._next(1)
        if not suggestions and self._active:
            raise HptError(
                f"strategy {self.strategy.name!r} proposes nothing until running trials are told; tell them first"
            )
        if not suggestions:
            raise HptError(f"strategy {self.strategy.name!r} has no more configurations to try")
        return self._start(suggestions[0])

    def tell(
        self,
        trial: Trial | int,
        value: float | Sequence[float] | None = None,
        *,
        state: TrialState | str | None = None,
        metrics: Mapping[str, float] | None = None,
        intermediate: Sequence[tuple[int, Mapping[str, float]]] = (),
        error: str | None = None,
    ) -> Trial:
        """Finish a trial from `ask`: a value completes it; `state="failed"` or `"pruned"` otherwise."""
        trial = self.trials[trial] if isinstance(trial, int) else trial
        if trial.number not in self._active:
            raise HptError(f"trial {trial.number} is not running (state {trial.state.value}); ask for a new one")
        state = (
            TrialState(state) if state is not None else TrialState.COMPLETE if value is not None else TrialState.FAILED
        )
        values = None
        if value is not None:
            try:
                values = as_values(value, len(self.directions))
            except (TypeError, ValueError) as exc:
                state, error = TrialState.FAILED, str(exc)
        if state is TrialState.COMPLETE and values is None:
            state, error = TrialState.FAILED, error or "told complete without a value"
        outcome = TrialOutcome(state, values, dict(metrics or {}), [(s, dict(m)) for s, m in intermediate], error)
        self._finish(trial, outcome)
        return trial

    def close(self, status: str = "FINISHED") -> None:
        """End the study (parent run status FINISHED, KILLED or FAILED)."""
        if not self._open:
            return
        self._notify("study_finishing", status)
        if status == "FINISHED":
            self._final_report()
        self._open = False
        self._notify("study_finished", status)
        if status == "FINISHED" and self.clean_checkpoints:
            remove(self.checkpoint_root)

    def __enter__(self) -> Study:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close("FINISHED" if exc_type is None else "KILLED" if exc_type is KeyboardInterrupt else "FAILED")

    # The loop
    def optimize(self, trials: int | None = None, timeout: float | None = None) -> Study:
        """Run up to `trials` new configurations (and/or for `timeout` seconds), or until the strategy is
        exhausted. Promotions of started configurations (successive halving) do not count as new ones.

        Ctrl-C cancels queued trials, records running ones as interrupted and keeps every finished one.
        """
        deadline = time.monotonic() + timeout if timeout else None
        started = 0
        running: dict[Future, list[Trial]] = {}
        try:
            self._ensure_open()
            if trials is not None:
                self.strategy.set_budget(len(self.trials) + trials)
            while True:
                while len(running) < self.runner.workers:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    # one trial per free worker, or with --batch-trials one batch per free worker
                    want = self.batch_trials or self.runner.workers - len(running)
                    if trials is None or started < trials:
                        suggestions = self._next(want if trials is None else min(want, trials - started))
                    else:  # no new configurations any more, but promotions of started ones go on
                        suggestions = self.strategy.ask_promotions(want)
                    if not suggestions:
                        break
                    group = [self._start(s) for s in suggestions]
                    started += sum(s.continues is None for s in suggestions)
                    if self.batch_trials:
                        running[self.runner.submit(BatchTask([self._task(t) for t in group]))] = group
                    else:
                        for trial in group:
                            running[self.runner.submit(self._task(trial))] = [trial]
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    group, result = running.pop(future), future.result()
                    # a batch whose worker died or timed out comes back as one outcome for all members
                    outcomes = result if isinstance(result, list) else [result] * len(group)
                    for trial, outcome in zip(group, outcomes, strict=True):
                        self._finish(trial, outcome)
                self._check_failures()
            self.runner.close()
        except KeyboardInterrupt:
            self.runner.close(cancel=True)
            self._interrupt_active()
            self.close("KILLED")
            raise
        except BaseException:
            self.runner.close(cancel=True)
            self._interrupt_active()
            self.close("FAILED")
            raise
        self.close("FINISHED")
        return self

    # Internals
    def _ensure_open(self) -> None:
        if not self._open:
            self._open = True
            self._notify("study_started")

    def _next(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        while self._queue and len(out) < n:
            out.append(self._queue.popleft())
        if len(out) < n:
            out.extend(self.strategy.ask(n - len(out)))
        return out

    def _start(self, suggestion: Suggestion) -> Trial:
        with deferred():
            return self._start_now(suggestion)

    def _start_now(self, suggestion: Suggestion) -> Trial:
        if suggestion.continues is not None:
            trial = self.trials[suggestion.continues]
            trial.state, trial.error = TrialState.RUNNING, None
        else:
            trial = Trial(len(self.trials), self.space.validate(suggestion.params), state=TrialState.RUNNING)
            self.trials.append(trial)
        trial.budget = suggestion.budget
        if suggestion.budget is not None:
            trial.budget_history.append(suggestion.budget)
        trial.started_at = time.time()
        self._active[trial.number] = trial
        self._notify("trial_started", trial)
        return trial

    def _checkpoint_dir(self, trial: Trial) -> Location:
        return trial_location(self.checkpoint_root, trial.number)

    def _task(self, trial: Trial) -> TrialTask:
        tracker = self.tracker if self.backend.needs_trial_run else None
        return TrialTask(
            number=trial.number,
            params=trial.params,
            budget=trial.budget,
            seed=None if self.seed is None else self.seed + trial.number,
            checkpoint_dir=self._checkpoint_dir(trial),
            n_objectives=len(self.directions),
            timeout=self.trial_timeout,
            stop_rule=self.pruner.rule(self.trials, self.backend.metric, self.directions[0]) if self.pruner else None,
            run_id=tracker.trial_run_id(trial.number) if tracker else None,
            tracking_uri=tracker.tracking_uri if tracker else None,
        )

    def _finish(self, trial: Trial, outcome: TrialOutcome) -> None:
        with deferred():
            self._finish_now(trial, outcome)

    def _finish_now(self, trial: Trial, outcome: TrialOutcome) -> None:
        trial.state = outcome.state
        trial.values = outcome.values
        trial.metrics.update(outcome.metrics)
        trial.intermediate.extend(outcome.intermediate)
        trial.in_run.extend(outcome.in_run)
        trial.error = outcome.error
        trial.duration += outcome.duration
        trial.finished_at = time.time()
        self._active.pop(trial.number, None)
        self._consider(trial)
        self.strategy.tell(trial)
        self._notify("trial_finished", trial)

    def _interrupt_active(self) -> None:
        for trial in list(self._active.values()):
            trial.state, trial.error, trial.finished_at = TrialState.FAILED, INTERRUPTED, time.time()
            self._notify("trial_finished", trial)
        self._active.clear()

    def _check_failures(self) -> None:
        if self.max_failures is None:
            return
        failed = [t for t in self.trials if t.state is TrialState.FAILED and t.error not in NOT_COUNTED]
        if len(failed) >= self.max_failures:
            raise HptError(f"stopped after {len(failed)} failed trials; last error: {failed[-1].error}")

    def _final_report(self) -> None:
        best = self.best_trial
        if best is None:
            return
        try:
            with fetched(self._checkpoint_dir(best)) as checkpoint_dir:
                self.final_metrics = self.backend.final_report(
                    best.params, None if self.seed is None else self.seed + best.number, checkpoint_dir
                )
        except Exception as exc:  # a report is a bonus: never lose the study over it
            log.warning("final report of the best trial failed: %s", exc)

    def _notify(self, event: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, event)(self, *args)
            except Exception as exc:  # a notifier must never stop the study; a store that cannot be written must
                if observer.critical:
                    raise
                log.warning("%s.%s failed: %s", type(observer).__name__, event, exc)
