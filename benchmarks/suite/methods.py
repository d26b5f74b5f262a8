"""The methods compared: every hpt strategy (driven by a sequential ask/tell loop), Optuna's TPE and GP
samplers, scikit-optimize's `gp_minimize` used directly. Each returns the params it evaluated, in order.

A method is named `name` or `name:key=value,...` (strategy options, for ablations: `skopt:warp=false`), and
`/bK` at the end asks for K points at a time, all evaluated before any is told (`auto/b16`: a runner with 16
workers, or `--batch-trials 16`); Optuna's samplers get K `study.ask()` before K `study.tell()`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hpt.space import Categorical, Fixed, Float, Int, Params, Space

Objective = Callable[[Params], float]
HPT_STRATEGIES = ("random", "grid", "skopt", "deap", "cmaes", "auto")
OTHERS = ("tpe", "optuna-gp", "gp_minimize")
DEFAULT_METHODS = ("random", "tpe", "optuna-gp", "gp_minimize", "skopt", "auto", "cmaes", "deap", "grid")


def batch(method: str) -> tuple[str, int]:
    """The method without its `/bK` suffix, and K (1 without one)."""
    base, slash, k = method.rpartition("/b")
    return (base, int(k)) if slash and k.isdigit() and int(k) >= 1 else (method, 1)


def parse(method: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = batch(method)[0].partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, text = item.partition("=")
        options[key] = _value(text)
    return name, options


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def revision(method: str) -> str:
    """What a cached result depends on: the source of an hpt strategy's plugin package, or the library version."""
    name, _ = parse(method)
    if name in HPT_STRATEGIES:
        from hpt.plugins import registry

        return _source_digest(registry().get("strategy", name).module)
    if name in ("tpe", "optuna-gp"):
        import optuna

        return f"optuna-{optuna.__version__}"
    import skopt

    return f"skopt-{skopt.__version__}"


def _source_digest(module: str) -> str:
    """A digest of a strategy's module and the modules of its package it imports (others' edits elsewhere in
    the package leave its results valid)."""
    package, _, _ = module.partition(".")
    folder = Path(__import__(package).__file__).parent
    seen, todo, digest = set(), [module.split(".")[-1]], hashlib.sha1()
    while todo:
        name = todo.pop()
        path = folder / f"{name}.py"
        if name in seen or not path.exists():
            continue
        seen.add(name)
        text = path.read_text()
        digest.update(text.encode())
        todo += re.findall(rf"\b{package}\.(\w+)", text)
    return digest.hexdigest()[:10]


def run_hpt(method: str, space: Space, objective: Objective, trials: int, seed: int) -> list[Params]:
    from hpt.plugins import registry
    from hpt.trial import Trial, TrialState

    name, options = parse(method)
    k = batch(method)[1]
    if name == "grid":
        options.setdefault("shuffle", True)
    strategy = registry().create("strategy", name, space, seed=seed, **options)
    evaluated: list[Params] = []
    while len(evaluated) < trials:
        suggestions = strategy.ask(min(k, trials - len(evaluated)))
        if not suggestions:
            break
        told = [(s.params, objective(s.params)) for s in suggestions]
        for params, value in told:
            strategy.tell(Trial(len(evaluated), params, state=TrialState.COMPLETE, values=[value]))
            evaluated.append(params)
    return evaluated


def _optuna_params(trial: Any, space: Space) -> Params:
    params: Params = {}
    for name, param in space.items():
        if not space.is_active(name, params):
            continue
        if isinstance(param, Float):
            params[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
        elif isinstance(param, Int):
            params[name] = trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
        elif isinstance(param, Categorical):
            params[name] = trial.suggest_categorical(name, list(param.choices))
        else:
            params[name] = param.value
    return params


def run_optuna(method: str, space: Space, objective: Objective, trials: int, seed: int) -> list[Params]:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    name, options = parse(method)
    sampler_class = optuna.samplers.TPESampler if name == "tpe" else optuna.samplers.GPSampler
    study = optuna.create_study(sampler=sampler_class(seed=seed, **options))
    k = batch(method)[1]
    evaluated: list[Params] = []

    def optuna_objective(trial: Any) -> float:
        params = _optuna_params(trial, space)
        evaluated.append(params)
        return objective(params)

    if k == 1:  # the loop the cached sequential runs were made with
        study.optimize(optuna_objective, n_trials=trials)
        return evaluated
    while len(evaluated) < trials:
        asked = [study.ask() for _ in range(min(k, trials - len(evaluated)))]
        batch_params = [_optuna_params(trial, space) for trial in asked]
        for trial, params in zip(asked, batch_params, strict=True):
            evaluated.append(params)
            study.tell(trial, objective(params))
    return evaluated


def run_gp_minimize(method: str, space: Space, objective: Objective, trials: int, seed: int) -> list[Params]:
    """scikit-optimize's own loop with its defaults; it has no conditions, so every parameter is a dimension
    and the objective sees only the active ones."""
    from skopt import gp_minimize
    from skopt.space import Categorical as SkCategorical
    from skopt.space import Integer, Real

    _, options = parse(method)
    names = [n for n, p in space.items() if not isinstance(p, Fixed)]
    dims = []
    for name in names:
        param = space[name]
        prior = "log-uniform" if getattr(param, "log", False) else "uniform"
        if isinstance(param, Float):
            dims.append(Real(param.low, param.high, prior=prior, name=name))
        elif isinstance(param, Int):
            dims.append(Integer(param.low, param.high, prior=prior, name=name))
        else:
            dims.append(SkCategorical(list(param.choices), name=name))
    evaluated: list[Params] = []

    def skopt_objective(x: list) -> float:
        coords = {n: (v.item() if isinstance(v, np.generic) else v) for n, v in zip(names, x, strict=True)}
        params: Params = {}
        for name, param in space.items():
            if space.is_active(name, params):
                params[name] = param.value if isinstance(param, Fixed) else coords[name]
        for name, param in space.items():  # steps: gp_minimize proposes any integer in range
            if isinstance(param, Int) and name in params and param.step != 1:
                params[name] = param.validate(param.low + round((params[name] - param.low) / param.step) * param.step)
        evaluated.append(params)
        return objective(params)

    gp_minimize(skopt_objective, dims, n_calls=trials, random_state=seed, **options)
    return evaluated


def runner(method: str) -> Callable[[str, Space, Objective, int, int], list[Params]]:
    name, _ = parse(method)
    if name in HPT_STRATEGIES:
        return run_hpt
    if name in ("tpe", "optuna-gp"):
        return run_optuna
    if name == "gp_minimize" and batch(method)[1] == 1:
        return run_gp_minimize
    raise ValueError(f"unknown method {method!r}")
