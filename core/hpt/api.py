"""The Python API: build a study from names or objects, run it, resume it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt.backend import Backend, CallableBackend
from hpt.checkpoints import exists
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.executors import Runner, SerialRunner
from hpt.observers import PluginHooks, StudyObserver
from hpt.plugins import registry
from hpt.pruners import make_pruner
from hpt.space import Space, as_space
from hpt.strategy import Strategy
from hpt.study import Study
from hpt.trial import NOT_COUNTED, Trial

if TYPE_CHECKING:
    from hpt.tracking import StudyRecord

Objective = Backend | Callable[..., Any] | str
SpaceLike = Space | Mapping[str, Any] | str | Path | None


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


def create_study(
    objective: Objective | None = None,
    space: SpaceLike = None,
    *,
    config: StudyConfig | None = None,
    strategy: str | Strategy | None = None,
    direction: str | None = None,
    tracking: bool | str = True,
    observers: Iterable[StudyObserver] = (),
    resume: StudyRecord | None = None,
    clean_checkpoints: bool | None = None,
    **settings: Any,
) -> Study:
    """Build a study from a `StudyConfig` and/or its fields as keyword arguments (`seed=0, workers=2`).

    `objective` is a registered backend name, a `Backend` or a plain callable (None: the configured or
    default backend); `strategy` a registered name or a `Strategy`. `tracking=True` logs to MLflow
    (`tracking_uri`, MLFLOW_TRACKING_URI or MLflow's default store), a string names a tracking URI, False
    keeps everything in memory. `overrides` are `--set` style pins and narrowings of the space."""
    if isinstance(tracking, str):
        settings["tracking_uri"] = tracking
    if direction is not None:
        settings["directions"] = [direction]
    if isinstance(objective, str):
        settings["backend"] = objective
    if isinstance(strategy, str):
        settings["strategy"] = strategy
    config = (config or StudyConfig()).replace(**settings)
    if objective is None or isinstance(objective, str):
        objective = config.backend or registry().default_name("backend")
    runner = _make_runner(config, objective)  # first: its workers start while the backend loads its data
    try:
        backend = make_backend(objective, as_space(space), **config.backend_options)
        the_space = as_space(space) or backend.default_space()
        for param_name, text in config.overrides.items():
            the_space = the_space.override(param_name, text)
        directions = list(config.directions or backend.directions)
        if config.batch_trials == "auto":
            config = config.replace(batch_trials=backend.auto_batch_trials())
        if isinstance(strategy, Strategy):
            strat = strategy
        else:
            strat = registry().create(
                "strategy",
                config.strategy or registry().default_name("strategy"),
                the_space,
                directions=directions,
                seed=config.seed,
                **config.strategy_options,
            )
        if len(directions) > 1 and not strat.multi_objective:
            raise HptError(f"strategy {strat.name!r} optimises one objective; use a multi-objective strategy")
        config = config.replace(
            backend=_registered_name("backend", backend),
            backend_options={**config.backend_options, **backend.options()},
            strategy=_registered_name("strategy", strat),
            directions=directions,
        )
        all_observers = [PluginHooks(), *observers]
        if tracking:
            from hpt.tracking import MlflowTracker

            all_observers.insert(0, MlflowTracker(config.tracking_uri, config.experiment, resume=resume))
        study = Study(
            backend,
            strat,
            space=the_space,
            config=config,
            runner=runner,
            observers=all_observers,
            pruner=make_pruner(config.prune, **config.prune_options),
            clean_checkpoints=clean_checkpoints,
        )
        if config.warm_start:
            from hpt.warm_start import load_warm_start

            study.warm_start(
                load_warm_start(config.warm_start, config.tracking_uri, the_space, config.backend, directions)
            )
    except BaseException:
        runner.close(cancel=True)
        raise
    study.config = study.config.replace(name=study.name, checkpoint_root=str(study.checkpoint_root))
    return study


def optimize(
    objective: Objective,
    space: SpaceLike = None,
    *,
    trials: int | None = 50,
    timeout: float | None = None,
    tracking: bool | str = False,
    **settings: Any,
) -> Study:
    """Tune `objective` (a callable taking a params dict, and optionally a trial context) over `space`;
    `settings` are those of `create_study`.

    >>> study = optimize(lambda p: (p["x"] - 2) ** 2, {"x": Float(-5, 5)}, trials=30, seed=0)
    >>> study.best_params
    """
    study = create_study(objective, space, tracking=tracking, trials=trials, timeout=timeout, **settings)
    return study.optimize(trials, timeout)


def resume_study(
    run_id: str, tracking_uri: str | None = None, *, force: bool = False, **changes: Any
) -> tuple[Study, int | None]:
    """Rebuild a tracked study from MLflow (and this machine's journal of it) and return it with the number
    of trials still to run.

    `changes` replace settings of the logged configuration (`trials` is the new total, counting the
    trials the study already has). Finished trials are replayed through the strategy; trials that were
    running when the study stopped are queued to run again. The study is taken first: one line if another
    live process runs it (`force` takes over its lease).
    """
    from hpt.tracking import acquire, load_study

    _, journal = acquire(run_id, tracking_uri, force)
    try:
        record = load_study(run_id, tracking_uri, journal=journal)
        logged = record.config
        changes = {k: v for k, v in changes.items() if v is not None}
        observers = changes.pop("observers", ())
        config = logged.replace(
            tracking_uri=tracking_uri or logged.tracking_uri,
            checkpoint_root=_surviving(logged.checkpoint_root),
            warm_start=None,  # the strategy relearns from the study's own trials
            **changes,
        )
        study = create_study(
            config.backend, record.space, config=config, resume=record, observers=observers, clean_checkpoints=True
        )
    except BaseException:
        journal.close()
        journal.unlock()
        raise
    study.restore(record.trials)
    for trial in record.interrupted:
        study.enqueue(trial.params, trial.budget)
    done = trials_done(record.trials)
    remaining = None if config.trials is None else max(0, config.trials - done)
    return study, remaining


def trials_done(trials: Iterable[Trial]) -> int:
    """Configurations a study has evaluated to the end (complete, pruned or failed by themselves): what
    `--trials` counts. Trials that were interrupted, or lost, are run again and do not count."""
    return sum(1 for t in trials if t.state.finished and t.params and t.error not in NOT_COUNTED)


def _make_runner(config: StudyConfig, objective: Objective) -> Runner:
    """The configured executor; without one, this process for one worker and the default executor for more."""
    name = config.executor
    if name is None and (config.workers or 1) <= 1:
        return SerialRunner(config.workers, preload=())
    name = name or registry().default_name("executor")
    return registry().create(
        "executor", name, config.workers, preload=worker_imports(objective), **config.executor_options
    )


def _registered_name(kind: str, plugin: Any) -> str:
    """The name a plugin object is registered under (what a resume builds it from), else its own name."""
    entry = registry().entry_of(kind, type(plugin))
    return entry.name if entry is not None else plugin.name


def _surviving(path: str | None) -> str | None:
    """The checkpoint folder of an earlier run, if it is still there."""
    return path if path and exists(path) else None


__all__ = ["create_study", "make_backend", "optimize", "resume_study"]
