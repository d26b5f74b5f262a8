"""Search-quality benchmark: simple regret of hpt's strategies against Optuna and scikit-optimize.

On the `function` backend (known optima), every method runs `--seeds` times per function; the
table gives the median and interquartile range of simple regret (best value found minus the
optimum) after each budget, and the ratio of that median to random search's in the same run. An
anytime plot (median with IQR band) is written to `--plot`. Budgets are prefixes of one run, so
a method runs once per seed up to its largest budget; GP-based methods (slow: a model fit per
trial) stop at `--gp-max-trials`.

    .venv/bin/python benchmarks/quality.py                          # the full run (long)
    .venv/bin/python benchmarks/quality.py --seeds 5 --gp-max-trials 60 --jobs 2
    .venv/bin/python benchmarks/quality.py --functions branin,mixed --methods random,skopt,tpe --budgets 30
    .venv/bin/python benchmarks/quality.py --ask-latency           # seconds per skopt ask at 50/100/200 trials

`--ask-latency` times the `skopt` strategy on Hartmann-6 after 50, 100 and 200 told trials: the
first ask of a resumed study (one fit on every trial), then a tell and an ask as in a running
study, against the same strategy with latency bounding switched off (`warm_after` beyond the
trial count: scikit-optimize's default fit and acquisition settings) in the same run.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread per process
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
from hpt.space import Categorical, Float, Int, Params, Space  # noqa: E402
from hpt_basic.test_functions import FUNCTIONS  # noqa: E402

HPT_METHODS = ("random", "grid", "skopt", "deap", "cmaes")
OTHER_METHODS = ("tpe", "optuna-gp", "gp_minimize")
GP_METHODS = {"skopt", "optuna-gp", "gp_minimize"}
DEFAULT_FUNCTIONS = ("branin", "hartmann6", "rosenbrock", "ackley", "mixed")
CONTINUOUS = ("branin", "hartmann6", "rosenbrock", "ackley")


def run_hpt(method: str, function: str, trials: int, seed: int) -> list[float]:
    import hpt
    from hpt_basic.function_backend import FunctionBackend

    options = {"shuffle": True} if method == "grid" else {}
    study = hpt.optimize(
        FunctionBackend(function=function), trials=trials, seed=seed, strategy=method, strategy_options=options
    )
    return [t.value if t.value is not None else np.inf for t in study.trials]


def _optuna_params(trial, space: Space) -> Params:
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


def run_optuna(method: str, function: str, trials: int, seed: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    fn = FUNCTIONS[function]
    space = fn.space(fn.default_dim)
    sampler = optuna.samplers.TPESampler(seed=seed) if method == "tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: fn.evaluate(_optuna_params(trial, space)), n_trials=trials)
    return [t.value for t in study.trials]


def run_gp_minimize(method: str, function: str, trials: int, seed: int) -> list[float]:
    from skopt import gp_minimize
    from skopt.space import Categorical as SkCategorical
    from skopt.space import Integer, Real

    fn = FUNCTIONS[function]
    space = fn.space(fn.default_dim)
    dims, names = [], list(space)
    for name, param in space.items():
        if isinstance(param, Float):
            dims.append(Real(param.low, param.high, prior="log-uniform" if param.log else "uniform", name=name))
        elif isinstance(param, Int):
            dims.append(Integer(param.low, param.high, prior="log-uniform" if param.log else "uniform", name=name))
        else:
            dims.append(SkCategorical(list(param.choices), name=name))
    result = gp_minimize(
        lambda x: fn.evaluate(dict(zip(names, x, strict=True))), dims, n_calls=trials, random_state=seed
    )
    return list(result.func_vals)


RUNNERS: dict[str, Callable[[str, str, int, int], list[float]]] = {
    **dict.fromkeys(HPT_METHODS, run_hpt),
    "tpe": run_optuna,
    "optuna-gp": run_optuna,
    "gp_minimize": run_gp_minimize,
}


def regret_curve(method: str, function: str, trials: int, seed: int) -> tuple[str, str, int, np.ndarray, float]:
    """Best-so-far regret after each trial, and the seconds the run took."""
    started = time.perf_counter()
    values = np.asarray(RUNNERS[method](method, function, trials, seed), dtype=float)
    best = np.minimum.accumulate(values) - FUNCTIONS[function].optimum
    return method, function, seed, np.maximum(best, 0.0), time.perf_counter() - started


def _cell(curves: list[np.ndarray], budget: int) -> tuple[float, float, float] | None:
    if not curves or len(curves[0]) < budget:
        return None
    at = np.array([c[budget - 1] for c in curves])
    return float(np.median(at)), float(np.percentile(at, 25)), float(np.percentile(at, 75))


def print_table(results: dict, functions: list[str], methods: list[str], budgets: list[int], seconds: dict) -> None:
    for function in functions:
        print(f"\n{function} (optimum {FUNCTIONS[function].optimum:g}): median regret [IQR], ratio to random's median")
        print(f"  {'method':<12}" + "".join(f"{'@' + str(b):>36}" for b in budgets) + f"{'s/run':>8}")
        baseline = {b: _cell(results.get(("random", function), []), b) for b in budgets}
        for method in methods:
            row = f"  {method:<12}"
            for budget in budgets:
                cell = _cell(results.get((method, function), []), budget)
                if cell is None:
                    row += f"{'-':>36}"
                    continue
                ratio = ""
                if baseline[budget] is not None and baseline[budget][0] > 0:
                    ratio = f" x{cell[0] / baseline[budget][0]:.2f}"
                row += f"{f'{cell[0]:.4g} [{cell[1]:.3g}, {cell[2]:.3g}]{ratio}':>36}"
            print(row + f"{seconds.get((method, function), 0.0):>8.1f}")


def print_goals(results: dict, functions: list[str], budgets: list[int]) -> None:
    def median(method: str, function: str, budget: int) -> float | None:
        cell = _cell(results.get((method, function), []), budget)
        return None if cell is None else cell[0]

    print("\nGoals")
    for budget in [b for b in budgets if b <= 60]:
        pairs = [(f, median("skopt", f, budget), median("tpe", f, budget)) for f in functions]
        pairs = [(f, s, t) for f, s, t in pairs if s is not None and t is not None]
        if pairs:
            wins = [f for f, s, t in pairs if s < t]
            print(f"  skopt < tpe @{budget}: {len(wins)}/{len(pairs)} functions ({', '.join(wins)})")
        pairs = [(f, median("skopt", f, budget), median("gp_minimize", f, budget)) for f in functions]
        pairs = [(f, s, g) for f, s, g in pairs if s is not None and g is not None]
        if pairs:
            ratios = ", ".join(f"{f} {s:.3g} vs {g:.3g}" for f, s, g in pairs)
            print(f"  skopt vs gp_minimize @{budget}: {ratios}")
    top = max(budgets)
    for method in ("deap", "cmaes"):
        pairs = [(f, median(method, f, top), median("random", f, top)) for f in functions if f in CONTINUOUS]
        pairs = [(f, m, r) for f, m, r in pairs if m is not None and r is not None]
        if pairs:
            wins = [f for f, m, r in pairs if m < r]
            print(f"  {method} < random @{top} (continuous): {len(wins)}/{len(pairs)} ({', '.join(wins)})")


def plot(results: dict, functions: list[str], methods: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(functions), figsize=(4.2 * len(functions), 3.6), squeeze=False)
    for ax, function in zip(axes[0], functions, strict=True):
        for method in methods:
            curves = results.get((method, function))
            if not curves:
                continue
            stack = np.vstack(curves)
            x = np.arange(1, stack.shape[1] + 1)
            (line,) = ax.plot(x, np.median(stack, axis=0), label=method)
            ax.fill_between(x, *np.percentile(stack, [25, 75], axis=0), color=line.get_color(), alpha=0.15)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(function)
        ax.set_xlabel("trials")
    axes[0][0].set_ylabel("simple regret (median, IQR)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _time_asks(told: int, options: dict) -> tuple[float, float]:
    from hpt.trial import Trial, TrialState
    from hpt_skopt.strategy import SkoptStrategy

    fn = FUNCTIONS["hartmann6"]
    space = fn.space(fn.default_dim)
    rng = np.random.default_rng(0)
    strategy = SkoptStrategy(space, seed=0, **options)
    for number in range(told):
        params = space.sample(rng)
        strategy.tell(Trial(number, params, state=TrialState.COMPLETE, values=[fn.evaluate(params)]))
    started = time.perf_counter()
    params = strategy.ask(1)[0].params
    resumed = time.perf_counter() - started
    started = time.perf_counter()
    strategy.tell(Trial(told, params, state=TrialState.COMPLETE, values=[fn.evaluate(params)]))
    strategy.ask(1)
    return resumed, time.perf_counter() - started


def ask_latency(sizes: tuple[int, ...] = (50, 100, 200)) -> None:
    print("skopt on hartmann6: seconds for the first ask after a resume, and for one tell + ask")
    print(f"  {'told':>5}{'resume ask':>12}{'tell+ask':>10}{'unbounded tell+ask':>20}{'ratio':>8}")
    for told in sizes:
        resumed, step = _time_asks(told, {})
        _, plain = _time_asks(told, {"warm_after": 10**6})
        print(f"  {told:>5}{resumed:>12.2f}{step:>10.2f}{plain:>20.2f}{step / plain:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", default=",".join(DEFAULT_FUNCTIONS), help="comma-separated test functions")
    parser.add_argument("--methods", default=",".join(HPT_METHODS + OTHER_METHODS), help="comma-separated methods")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per method and function")
    parser.add_argument("--budgets", default="30,60,200", help="comma-separated trial budgets reported")
    parser.add_argument("--gp-max-trials", type=int, default=200, help="largest budget run by GP-based methods")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--plot", default="quality.png", help="anytime plot (PNG) to write")
    parser.add_argument("--ask-latency", action="store_true", help="time skopt asks at 50/100/200 trials instead")
    args = parser.parse_args()
    if args.ask_latency:
        ask_latency()
        return

    functions = args.functions.split(",")
    methods = args.methods.split(",")
    budgets = sorted(int(b) for b in args.budgets.split(","))
    unknown = [m for m in methods if m not in RUNNERS] + [f for f in functions if f not in FUNCTIONS]
    if unknown:
        parser.error(f"unknown method or function: {', '.join(unknown)}")
    jobs = []
    for method in methods:
        trials = max(budgets) if method not in GP_METHODS else min(max(budgets), args.gp_max_trials)
        jobs += [(method, f, trials, seed) for f in functions for seed in range(args.seeds)]

    results: dict[tuple[str, str], list[np.ndarray]] = {}
    seconds: dict[tuple[str, str], float] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for method, function, _seed, curve, took in pool.map(regret_curve, *zip(*jobs, strict=True)):
            results.setdefault((method, function), []).append(curve)
            seconds[method, function] = seconds.get((method, function), 0.0) + took / args.seeds
    print(f"seeds 0..{args.seeds - 1}; GP-based methods up to {args.gp_max_trials} trials")
    print_table(results, functions, methods, budgets, seconds)
    print_goals(results, functions, budgets)
    plot(results, functions, methods, args.plot)
    print(f"\nanytime plot: {args.plot}")


if __name__ == "__main__":
    main()
