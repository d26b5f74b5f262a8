"""Contract checks for plugin authors: does a strategy or a backend keep the promises the study loop
relies on? Plain functions that raise AssertionError with a message saying what broke, so they run from
pytest or from a script alike:

    from hpt.testing import check_backend, check_strategy
    from my_pkg.halton import HaltonSearch

    def test_halton_keeps_the_strategy_contract():
        check_strategy(HaltonSearch)

    def test_my_backend_keeps_the_backend_contract():
        check_backend(MyBackend(size=10))

The checks drive the real study loop in memory (no MLflow), on a small space that holds every kind of
parameter. Importing this module imports no heavy library.
"""

from __future__ import annotations

import copy
import math
import pickle
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.errors import HptError, SpaceError
from hpt.space import Categorical, Fixed, Float, Int, Params, Space
from hpt.strategy import Strategy
from hpt.trial import as_values

if TYPE_CHECKING:
    from hpt.study import Study

StrategyFactory = Callable[..., Strategy]
"""Builds a strategy as `factory(space, directions=..., seed=...)`: a Strategy class, or a function
that adds options (`lambda space, **kw: MyStrategy(space, population=8, **kw)`)."""


def contract_space() -> Space:
    """A small space with every kind of parameter: log and linear floats, an integer on a step grid,
    a categorical, a fixed value and a parameter that exists only for one categorical choice."""
    return Space(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "dropout": Float(0.0, 0.5),
            "units": Int(16, 128, step=16),
            "optimizer": Categorical(["sgd", "adam", "rmsprop"]),
            "momentum": Float(0.5, 0.99, when={"optimizer": ["sgd"]}),
            "batch": Fixed(32),
        }
    )


def _loss(params: Params) -> float:
    """A deterministic bowl over the contract space (any space: unknown parameters count by their hash)."""
    total = 0.0
    for name, value in sorted(params.items()):
        if name == "lr":
            total += (math.log10(value) + 2.5) ** 2
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total += (float(value) / (1.0 + abs(float(value)))) ** 2
        else:
            total += (sum(map(ord, str(value))) % 7) / 10
    return total


def _objective(n_objectives: int, fail_every: int | None = None) -> Callable[[Params, TrialContext], Any]:
    """An objective that reports a short learning curve (one step per unit of budget) and returns
    `n_objectives` values; with `fail_every`, every such trial raises."""

    def objective(params: Params, ctx: TrialContext) -> list[float]:
        if fail_every and ctx.number % fail_every == fail_every - 1:
            raise RuntimeError("a failing trial (hpt.testing)")
        base = _loss(params)
        epochs = max(1, math.ceil(ctx.budget or 1))
        for step in range(epochs):
            ctx.report(step, base + 1.0 / (step + 1))
            if ctx.should_stop():
                raise TrialPruned
        values = [base + 1.0 / epochs]
        values += [1.0 / (1.0 + base) + 0.1 * i for i in range(1, n_objectives)]
        return values

    return objective


def _study(strategy: Strategy, space: Space, directions: Sequence[str], seed: int | None, fail_every=None) -> Study:
    from hpt.api import create_study

    return create_study(
        _objective(len(directions), fail_every),
        space,
        strategy=strategy,
        directions=list(directions),
        seed=seed,
        tracking=False,
    )


def _key(params: Params) -> str:
    return repr(sorted(params.items()))


def _name(strategy: Strategy) -> str:
    return f"strategy {strategy.name or type(strategy).__name__!r}"


def _run(study: Study, trials: int, what: str) -> Study:
    try:
        study.optimize(trials)
    except HptError as exc:  # an invalid point: the space names the parameter and the value
        raise AssertionError(f"{_name(study.strategy)} ({what}): {exc}") from None
    return study


def _history(study: Study) -> list[tuple[str, list[float]]]:
    return [(_key(t.params), list(t.budget_history)) for t in study.trials]


def check_strategy(
    factory: StrategyFactory,
    *,
    space: Space | None = None,
    directions: Sequence[str] = ("minimize",),
    trials: int = 12,
    seed: int = 7,
    pending: int = 4,
    exact_resume: bool = False,
) -> None:
    """Check the Strategy contract (`hpt.strategy.Strategy`) on `space` (default `contract_space()`):

    - every proposal is a valid point of the space (each parameter kind, conditions respected);
    - the same seed gives the same proposals;
    - several asks before any tell (parallel workers) give distinct configurations, and asks go on
      once they are told;
    - resume: a fresh instance told the first half of a study's trials proposes none of their
      configurations again (with `exact_resume`, exactly what the uninterrupted study proposed);
    - failed trials are told and the strategy still proposes.
    """
    space = space or contract_space()
    directions = tuple(directions)

    def make() -> Strategy:
        strategy = factory(space, directions=directions, seed=seed)
        assert isinstance(strategy, Strategy), f"the factory returned {strategy!r}, not a Strategy"
        return strategy

    # valid points: the study loop validates every proposal (a bad one names the parameter and value)
    first = _run(_study(make(), space, directions, seed), trials, "valid points")
    name = _name(first.strategy)
    assert first.trials, f"{name} proposed nothing on a fresh study"

    # seeds
    again = _run(_study(make(), space, directions, seed), trials, "seeds")
    assert _history(again) == _history(first), (
        f"{name}: the same seed gave different proposals:\n  {_history(first)[:3]}\n  {_history(again)[:3]}"
    )

    _check_pending(make(), space, directions, seed, pending, name)
    _check_resume(make, space, directions, seed, trials, exact_resume, name)

    # failures
    failing = _run(_study(make(), space, directions, seed, fail_every=3), trials, "failed trials")
    counts = failing.counts()
    assert counts["failed"] > 0, f"{name}: the failure check ran no failing trial"
    assert len(failing.trials) == len(first.trials), (
        f"{name}: after failed trials it stopped proposing ({len(failing.trials)} trials, {len(first.trials)} without)"
    )


def _check_pending(strategy: Strategy, space: Space, directions: Sequence[str], seed: int, n: int, name: str) -> None:
    study = _study(strategy, space, directions, seed)
    running = []
    for _ in range(n):
        try:
            running.append(study.ask())
        except SpaceError as exc:
            raise AssertionError(f"{name} (pending asks): {exc}") from None
        except HptError:  # nothing more until the running ones are told: allowed (a generation, a rung)
            break
    assert running, f"{name}: asked with nothing pending, it proposed nothing"
    keys = [_key(t.params) for t in running]
    assert len(set(keys)) == len(keys), f"{name}: pending asks repeated a configuration: {keys}"
    objective = _objective(len(directions))
    for trial in running:
        ctx = TrialContext(trial.number, trial.budget)
        study.tell(trial, objective(trial.params, ctx), intermediate=ctx.reports)
    try:
        study.ask()
    except HptError as exc:
        raise AssertionError(f"{name}: after the pending trials were told: {exc}") from None
    finally:
        study.close()


def _check_resume(
    make: Callable[[], Strategy],
    space: Space,
    directions: Sequence[str],
    seed: int,
    trials: int,
    exact: bool,
    name: str,
) -> None:
    half = max(1, trials // 2)
    stopped = _run(_study(make(), space, directions, seed), half, "resume, first part")
    finished = [copy.deepcopy(t) for t in stopped.trials]
    resumed = _study(make(), space, directions, seed)
    resumed.restore(finished)
    _run(resumed, trials - half, "resume, second part")
    done = {_key(t.params): t.number for t in finished}
    for trial in resumed.trials[len(finished) :]:
        key = _key(trial.params)
        assert key not in done, (
            f"{name}: after a resume, trial {trial.number} repeats finished trial {done[key]} ({trial.params}); "
            "replaying trials through tell must put the strategy where it was (see Strategy.rng_for)"
        )
    if exact:
        whole = _run(_study(make(), space, directions, seed), trials, "resume, uninterrupted")
        assert _history(resumed) == _history(whole), (
            f"{name}: a resumed study proposes otherwise than one never stopped"
        )


def check_backend(backend: Backend, *, params: Params | None = None, budget: float | None = None) -> None:
    """Check the Backend contract on `backend`:

    - it survives pickling (it is shipped to worker processes);
    - `default_space()` is a Space whose samples validate;
    - `evaluate(params, budget, ctx)` reports metrics through `ctx` (its `metric` among them, which
      pruning compares) and returns a value per objective (`params`: default, a sample of the space);
    - `options()` records how it was built: the class called with them builds a backend with the same
      options (resume and the recorded study config rely on it).
    """
    import numpy as np

    label = f"backend {backend.name or type(backend).__name__!r}"
    try:
        clone = pickle.loads(pickle.dumps(backend))
    except Exception as exc:
        raise AssertionError(f"{label} cannot be pickled (workers need it): {exc}") from None
    assert type(clone) is type(backend), f"{label}: unpickled as {type(clone).__name__}"

    space = backend.default_space()
    assert isinstance(space, Space) and len(space) > 0, f"{label}: default_space() returned {space!r}"
    point = space.sample(np.random.default_rng(0))
    assert space.validate(point) == point, f"{label}: a sample of default_space() is not valid: {point}"

    params = space.validate(params) if params is not None else point
    with tempfile.TemporaryDirectory(prefix="hpt-check-") as tmp:
        ctx = TrialContext(0, budget, seed=0, checkpoint_dir=Path(tmp) / "trial-0000", metric=backend.metric)
        raw = backend.evaluate(params, budget, ctx)
    value = raw.value if isinstance(raw, Result) else raw
    try:
        values = as_values(value, len(backend.directions))
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{label}: evaluate returned {raw!r}: {exc}") from None
    assert ctx.reports, f"{label}: evaluate reported no metrics through ctx.report"
    reported = {name for _, metrics in ctx.reports for name in metrics}
    assert backend.metric in reported, f"{label}: its metric {backend.metric!r} is not among those reported {reported}"
    assert all(math.isfinite(v) for v in values), f"{label}: evaluate returned {values}"

    options = backend.options()
    try:
        rebuilt = type(backend)(**options)
    except Exception as exc:
        raise AssertionError(f"{label}: options() {options} do not rebuild it: {exc}") from None
    assert rebuilt.options() == options, f"{label}: rebuilt from {options} it records {rebuilt.options()}"


__all__ = ["StrategyFactory", "check_backend", "check_strategy", "contract_space"]
