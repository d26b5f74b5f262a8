"""Framework overhead, against Optuna in the same run.

Per trial, in one process: a no-op objective with hpt random search with tracking off and on (SQLite),
against Optuna's random sampler in memory and with its MLflow callback.

    python benchmarks/overhead.py [--trials 2000] [--tracked-trials 200] [--repeats 3]

Whole processes, cold (`--cold`): what a user waits for at the shell, each command a new process, hpt and
Optuna alternating in each of `--repeats` pairs; seconds and peak memory (max RSS), medians, and the median
of the paired ratios. 20 Branin trials tracked in a new SQLite store (hpt `random` and the default `auto`,
against Optuna's TPE with SQLite storage), one trial on an existing store, and listing the studies of a
store (`hpt studies` against `optuna studies`).

    python benchmarks/overhead.py --cold [--repeats 4]

Prints microseconds per trial (best of `repeats`) and the ratios the goals are stated in:
hpt untracked / Optuna in memory (goal <= 2) and hpt tracked / Optuna + MLflow (goal <= 1). The
per-study plots hpt logs at the end of a study are a one-off cost, shown on a row of their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

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


OPTUNA_BRANIN = """
import math, sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
def branin(trial):
    x1, x2 = trial.suggest_float("x1", -5, 10), trial.suggest_float("x2", 0, 15)
    a = (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
    return a + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10
study = optuna.create_study(storage=sys.argv[1], sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(branin, n_trials=int(sys.argv[2]))
"""


def measure(command: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak memory (MiB, max RSS) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {proc.stderr.read().decode()[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def cold(repeats: int) -> None:
    """The whole-process table (see the module docstring)."""
    bin_dir = Path(sys.executable).parent
    hpt_cmd, optuna_cmd = str(bin_dir / "hpt"), str(bin_dir / "optuna")
    branin = ["run", "--backend", "function", "--function", "branin", "--quiet"]
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HPT_HOME": f"{tmp}/hpt-home"}
        for r in range(repeats):
            work = Path(tmp) / f"r{r}"
            work.mkdir()
            if r == 0:  # the first store of an MLflow version is built once and kept: not a per-study cost
                measure([hpt_cmd, *branin, "--strategy", "random", "--trials", "1"], str(work), env)
                (work / "mlflow.db").unlink()
            cases = {
                "20 Branin trials, new store: hpt random": [hpt_cmd, *branin, "--strategy", "random", "--trials", "20"],
                "20 Branin trials, new store: optuna TPE": [
                    sys.executable,
                    "-c",
                    OPTUNA_BRANIN,
                    f"sqlite:///{work}/optuna.db",
                    "20",
                ],
                "20 Branin trials, new store: hpt auto": [hpt_cmd, *branin, "--trials", "20"],
                "1 Branin trial, existing store: hpt": [hpt_cmd, *branin, "--strategy", "random", "--trials", "1"],
                "1 Branin trial, existing store: optuna": [
                    sys.executable,
                    "-c",
                    OPTUNA_BRANIN,
                    f"sqlite:///{work}/optuna.db",
                    "1",
                ],
                "list the studies: hpt studies": [hpt_cmd, "studies"],
                "list the studies: optuna studies": [optuna_cmd, "studies", "--storage", f"sqlite:///{work}/optuna.db"],
            }
            for name, command in cases.items():
                if "new store: hpt auto" in name:
                    (work / "mlflow.db").unlink(missing_ok=True)
                rows.setdefault(name, []).append(measure(command, str(work), env))
                if "new store: hpt random" in name:
                    (work / "mlflow.db").rename(work / "random.db")
    print(f"{'whole process, ' + str(repeats) + ' paired repeats':<44} {'median s':>9} {'peak MiB':>9}")
    for name, values in rows.items():
        secs, mems = zip(*values, strict=True)
        print(f"{name:<44} {statistics.median(secs):9.2f} {statistics.median(mems):9.0f}")
    pairs = [
        ("20 Branin trials, new store: hpt random", "20 Branin trials, new store: optuna TPE", 2.0),
        ("20 Branin trials, new store: hpt auto", "20 Branin trials, new store: optuna TPE", 2.0),
        ("1 Branin trial, existing store: hpt", "1 Branin trial, existing store: optuna", None),
        ("list the studies: hpt studies", "list the studies: optuna studies", 1.5),
    ]
    for ours, theirs, goal in pairs:
        ratios = [a[0] / b[0] for a, b in zip(rows[ours], rows[theirs], strict=True)]
        goal_text = f"  (goal <= {goal})" if goal else ""
        print(
            f"ratio {ours.split(': ')[1]} / {theirs.split(': ')[1]} ({ours.split(':')[0]}): median "
            f"{statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}{goal_text}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials of the in-memory runs")
    parser.add_argument("--tracked-trials", type=int, default=200, help="trials of the runs logging to MLflow")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="whole processes instead of per-trial costs")
    args = parser.parse_args()
    if args.cold:
        cold(args.repeats)
        return
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
