"""Parallel speed-up: wall time of the same MLP trials on digits run serially, on a local process pool
and on a dask LocalCluster, in the same run; then the per-trial overhead of the dask executor with a
no-op objective against the serial runner.

    python benchmarks/parallel.py [--trials 16] [--workers 2] [--max-epochs N] [--noop-trials 200] [--repeats 1]

Every configuration runs the same trials (random search, same seed), each in a fresh Python process
that has imported only hpt, as `hpt run` would: the wall time covers building the study (importing
torch and scikit-learn, loading the data, starting the workers or the LocalCluster), the trials, the
test score of the best one and stopping the workers. With `--repeats`, the configurations take turns
and each keeps its best time (robust to other load on the machine).
Goals on a 2-core machine: process pool >= 1.7x the serial run, dask within 10% of the process pool.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

import hpt
from hpt.errors import PluginError

NOOP_SPACE = {"x": hpt.Float(-5, 5), "n": hpt.Int(1, 8)}


def noop(params: dict) -> float:
    return 0.0


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def mlp_study(trials: int, workers: int, executor: str, max_epochs: int | None, dataset: str) -> tuple[float, int]:
    """Seconds to build and run the study in a fresh process, and how many trials completed."""
    command = [sys.executable, __file__, "--one", executor, str(workers), "--trials", str(trials)]
    command += ["--dataset", dataset, *(["--max-epochs", str(max_epochs)] if max_epochs else [])]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    return measured["seconds"], measured["complete"]


def one_study(args: argparse.Namespace) -> None:
    """The measured part of one configuration (run by `mlp_study` in its own process)."""
    executor, workers = args.one[0], int(args.one[1])
    start = time.perf_counter()
    study = hpt.create_study(
        "mlp",
        seed=0,
        workers=workers,
        executor=executor,
        tracking=False,
        backend_options={"dataset": args.dataset},
        overrides={"max_epochs": str(args.max_epochs)} if args.max_epochs else {},
    )
    study.optimize(args.trials)
    print(json.dumps({"seconds": time.perf_counter() - start, "complete": study.counts()["complete"]}))


def mlp_speedups(args: argparse.Namespace) -> None:
    try:
        hpt.api.make_backend("mlp", dataset=args.dataset)
    except PluginError as exc:
        print(f"skipping the MLP benchmark: {exc}")
        return
    rows = {
        "serial, 1 worker": ("serial", 1),
        f"process pool, {args.workers} workers": ("process", args.workers),
        f"dask LocalCluster, {args.workers} workers": ("dask", args.workers),
    }
    print(f"{args.trials} MLP trials on {args.dataset}, max_epochs={args.max_epochs or 'the default space (50)'}")
    seconds = {name: float("inf") for name in rows}
    for _ in range(args.repeats):
        for name, (executor, workers) in rows.items():
            wall, complete = mlp_study(args.trials, workers, executor, args.max_epochs, args.dataset)
            seconds[name] = min(seconds[name], wall)
            print(f"  {name:<32} {wall:7.2f} s  ({complete} complete)")
    print("best of", args.repeats, ":", ", ".join(f"{name} {s:.2f} s" for name, s in seconds.items()))
    serial, process, dask = seconds.values()
    print(f"speed-up process pool vs serial:  {serial / process:.2f}x  (goal >= 1.7)")
    print(f"speed-up dask vs serial:          {serial / dask:.2f}x")
    print(f"dask / process pool wall time:    {dask / process:.2f}   (goal <= 1.10)")


def dask_overhead(args: argparse.Namespace) -> None:
    n = args.noop_trials
    serial = timed(lambda: hpt.optimize(noop, NOOP_SPACE, trials=n, seed=0, tracking=False))
    print(f"\nno-op objective, {n} trials (cluster start-up excluded)")
    print(f"  {'serial runner':<32} {serial / n * 1e3:8.3f} ms/trial")
    for workers in (1, args.workers):
        study = hpt.create_study(noop, NOOP_SPACE, seed=0, workers=workers, executor="dask", tracking=False)
        seconds = timed(lambda study=study: study.optimize(n))
        overhead = (seconds - serial) / n * 1e3
        print(
            f"  dask, {workers} worker(s){'':<19} {seconds / n * 1e3:8.3f} ms/trial  (+{overhead:.3f} ms over serial)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="MLP trials per configuration")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, help="pins the MLP's max_epochs (default: the default space)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each MLP configuration, best kept")
    parser.add_argument("--noop-trials", type=int, default=200, help="trials of the dask overhead runs")
    parser.add_argument("--one", nargs=2, metavar=("EXECUTOR", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    if args.one:
        one_study(args)
        return
    print(f"{os.cpu_count()} cores")
    mlp_speedups(args)
    dask_overhead(args)


if __name__ == "__main__":
    main()
