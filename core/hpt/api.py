"""The Python API: build a study from names or objects, run it, resume it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt.backend import Backend, CallableBackend
from hpt.errors import HptError
from hpt.observers import PluginHooks, StudyObserver
from hpt.plugins import registry
from hpt.pruners import make_pruner
from hpt.space import Space, as_space
from hpt.strategy import Strategy
from hpt.study import Study
from hpt.trial import DIRECTIONS

if TYPE_CHECKING:
    from hpt.tracking import StudyRecord

Objective = Backend | Callable[..., Any] | str


def make_backend(objective: Objective, space: Space | None = None, **backend_options: Any) -> Backend:
    """A backend from a registered name, a Backend instance or a plain callable."""
    if isinstance(objective, Backend):
        return objective
    if isinstance(objective, str):
        return registry().create("backend", objective, **backend_options)
    if callable(objective):
        return CallableBackend(objective, space)
    raise HptError(f"cannot tune {objective!r}: pass a callable, a Backend or a backend name")


def worker_imports(objective: Objective) -> tuple[str, ...]:
    """The modules a worker process needs for this objective's backend, known without importing them:
    the backend's module and its registered `worker_imports` (a plain callable's module may be
    `__main__`: none)."""
    if isinstance(objective, str):
        entry = registry().get("backend", objective)
    elif isinstance(objective, Backend):
        entry = registry().entry_of("backend", type(objective))
        if entry is None:
            return (type(objective).__module__,)
    else:
        return ()
    return (entry.module, *entry.worker_imports)


def _directions(backend: Backend, direction: str | None, directions: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(directions) if directions else (direction,) if direction else tuple(backend.directions)
    for d in chosen:
        if d not in DIRECTIONS:
            raise HptError(f"unknown direction {d!r}; use minimize or maximize")
    return chosen


def create_study(
    objective: Objective,
    space: Space | Mapping[str, Any] | str | Path | None = None,
    *,
    strategy: str | Strategy = "random",
    direction: str | None = None,
    directions: Sequence[str] | None = None,
    seed: int | None = None,
    workers: int | None = None,
    executor: str | None = None,
    executor_options: Mapping[str, Any] | None = None,
    tracking: bool | str = True,
    experiment: str = "hpt",
    plots: bool = True,
    strategy_options: Mapping[str, Any] | None = None,
    backend_options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, str] | None = None,
    name: str | None = None,
    max_failures: int | None = None,
    trial_timeout: float | None = None,
    prune: str | None = None,
    prune_options: Mapping[str, Any] | None = None,
    batch_trials: int | None = None,
    observers: Iterable[StudyObserver] = (),
    checkpoint_root: Path | None = None,
    clean_checkpoints: bool | None = None,
    trials: int | None = None,
    resume: StudyRecord | None = None,
) -> Study:
    """Build a study. `tracking=True` logs to MLflow's default store, a string names a tracking URI,
    False keeps everything in memory. `overrides` are `--set` style pins/narrowings of the space."""
    executor = executor or ("serial" if (workers or 1) <= 1 else "process")
    # the runner first: its workers (or cluster) start up while the backend loads its data
    runner = registry().create(
        "executor", executor, workers, preload=worker_imports(objective), **dict(executor_options or {})
    )
    try:
        backend = make_backend(objective, as_space(space), **dict(backend_options or {}))
        the_space = as_space(space) or backend.default_space()
        for param_name, text in (overrides or {}).items():
            the_space = the_space.override(param_name, text)
        dirs = _directions(backend, direction, directions)
        if isinstance(strategy, Strategy):
            strat = strategy
        else:
            strat = registry().create(
                "strategy", strategy, the_space, directions=dirs, seed=seed, **dict(strategy_options or {})
            )
        if len(dirs) > 1 and not strat.multi_objective:
            raise HptError(f"strategy {strat.name!r} optimises one objective; use a multi-objective strategy")
        config = {
            "strategy": strat.name,
            "strategy_options": dict(strategy_options or {}),
            "backend": backend.name,
            "backend_options": backend.options(),
            "directions": list(dirs),
            "seed": seed,
            "trials": trials,
            "workers": workers,
            "executor": executor,
            "prune": prune,
            "prune_options": dict(prune_options or {}),
            "batch_trials": batch_trials,
        }
        all_observers = [PluginHooks(), *observers]
        if tracking:
            from hpt.tracking import MlflowTracker

            uri = tracking if isinstance(tracking, str) else None
            all_observers.insert(0, MlflowTracker(uri, experiment, resume=resume, plots=plots))
        study = Study(
            backend,
            strat,
            space=the_space,
            directions=dirs,
            seed=seed,
            runner=runner,
            observers=all_observers,
            name=name,
            config=config,
            checkpoint_root=checkpoint_root,
            max_failures=max_failures,
            trial_timeout=trial_timeout,
            pruner=make_pruner(prune, **dict(prune_options or {})),
            batch_trials=batch_trials,
            clean_checkpoints=clean_checkpoints,
        )
    except BaseException:
        runner.close(cancel=True)
        raise
    study.config["checkpoint_root"] = str(study.checkpoint_root)
    return study


def optimize(
    objective: Objective,
    space: Space | Mapping[str, Any] | str | Path | None = None,
    *,
    strategy: str | Strategy = "random",
    trials: int | None = 50,
    timeout: float | None = None,
    seed: int | None = None,
    direction: str | None = None,
    tracking: bool | str = False,
    **options: Any,
) -> Study:
    """Tune `objective` (a callable taking a params dict, and optionally a trial context) over `space`.

    >>> study = optimize(lambda p: (p["x"] - 2) ** 2, {"x": Float(-5, 5)}, trials=30, seed=0)
    >>> study.best_params
    """
    study = create_study(
        objective, space, strategy=strategy, seed=seed, direction=direction, tracking=tracking, trials=trials, **options
    )
    return study.optimize(trials, timeout)


def resume_study(run_id: str, tracking_uri: str | None = None, **overrides: Any) -> tuple[Study, int | None]:
    """Rebuild a tracked study from MLflow and return it with the number of trials still to run.

    Finished trials are replayed through the strategy; trials that were running when the study
    stopped are queued to run again.
    """
    from hpt.tracking import load_study

    record = load_study(run_id, tracking_uri)
    config = record.config
    requested = overrides.pop("trials", None) or config.get("trials")
    study = create_study(
        config["backend"],
        record.space,
        strategy=config["strategy"],
        directions=config["directions"],
        seed=config.get("seed"),
        workers=overrides.pop("workers", None) or config.get("workers", 1),
        executor=overrides.pop("executor", None) or config.get("executor"),
        tracking=tracking_uri or True,
        strategy_options=config.get("strategy_options"),
        backend_options=config.get("backend_options"),
        prune=config.get("prune"),
        prune_options=config.get("prune_options"),
        batch_trials=config.get("batch_trials"),
        checkpoint_root=_surviving(config.get("checkpoint_root")),
        clean_checkpoints=True,
        trials=requested,
        resume=record,
        **overrides,
    )
    study.restore(record.trials)
    for trial in record.interrupted:
        study.enqueue(trial.params, trial.budget)
    interrupted = {t.number for t in record.interrupted}
    done = sum(1 for t in record.trials if t.state.finished and t.params and t.number not in interrupted)
    remaining = None if requested is None else max(0, requested - done)
    return study, remaining


def _surviving(path: str | None) -> Path | None:
    """The checkpoint folder of an earlier run, if it is still there."""
    return Path(path) if path and Path(path).is_dir() else None


__all__ = ["create_study", "make_backend", "optimize", "resume_study"]
