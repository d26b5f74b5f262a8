"""Per-trial framework overhead with a no-op objective: hpt random search with tracking off and on
(SQLite), against Optuna's random sampler in memory and with its MLflow callback, in the same run.

    python benchmarks/overhead.py [--trials 2000] [--tracked-trials 200] [--repeats 3]

Prints microseconds per trial (best of `repeats`) and the ratios the goals are stated in:
hpt untracked / Optuna in memory (goal <= 2) and hpt tracked / Optuna + MLflow (goal <= 1). The
per-study plots hpt logs at the end of a study are a one-off cost, shown on a row of their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable

import hpt

SPACE = {
    "x": hpt.Float(-5, 5),
    "y": hpt.Float(1e-3, 1.0, log=True),
    "n": hpt.Int(1, 8),
    "c": hpt.Categorical(["a", "b"]),
}


def noop(params: dict) -> float:
    return 0.0


def hpt_run(trials: int, tracking: str | bool, plots: bool = False) -> None:
    hpt.optimize(noop, SPACE, strategy="random", trials=trials, seed=0, tracking=tracking, plots=plots)


def optuna_run(trials: int, tracking_uri: str | None) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", -5, 5)
        trial.suggest_float("y", 1e-3, 1.0, log=True)
        trial.suggest_int("n", 1, 8)
        trial.suggest_categorical("c", ["a", "b"])
        return 0.0

    callbacks = []
    if tracking_uri:
        from optuna_integration.mlflow import MLflowCallback

        callbacks.append(MLflowCallback(tracking_uri=tracking_uri, metric_name="objective"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=trials, callbacks=callbacks)


def per_trial_us(fn: Callable[[], None], trials: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / trials * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials of the in-memory runs")
    parser.add_argument("--tracked-trials", type=int, default=200, help="trials of the runs logging to MLflow")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)  # MLflowCallback's deprecation notice
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        counter = iter(range(10**6))

        def store() -> str:  # a fresh SQLite store per run: no run pays for another's rows
            return f"sqlite:///{tmp}/store-{next(counter)}.db"

        hpt_run(10, store())  # import MLflow and create its tables once, outside the timings
        optuna_run(10, store())
        n, m, r = args.trials, args.tracked_trials, args.repeats
        rows = {
            "hpt random, tracking off": per_trial_us(lambda: hpt_run(n, False), n, r),
            "optuna random, in memory": per_trial_us(lambda: optuna_run(n, None), n, r),
            "hpt random, MLflow SQLite": per_trial_us(lambda: hpt_run(m, store()), m, r),
            "  same, with the study's plots": per_trial_us(lambda: hpt_run(m, store(), plots=True), m, r),
            "optuna random + MLflowCallback": per_trial_us(lambda: optuna_run(m, store()), m, r),
        }
    for name, us in rows.items():
        print(f"{name:<34} {us:10.1f} us/trial")
    off = rows["hpt random, tracking off"] / rows["optuna random, in memory"]
    on = rows["hpt random, MLflow SQLite"] / rows["optuna random + MLflowCallback"]
    print(f"ratio hpt/optuna, in memory:    {off:.2f}  (goal <= 2.0)")
    print(f"ratio hpt/optuna, with MLflow:  {on:.2f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
