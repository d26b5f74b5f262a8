"""Population training on the default mlp space (nothing pinned): trials per minute of K random
configurations trained by `MLPBackend.evaluate_batch` (what `hpt run --batch-trials K` does) against the
same configurations, with the same seeds, trained one after another by `MLPBackend.evaluate` (what
`hpt run` does: by default a stack of one, `--trainer autograd` for the nn.Module and torch.optim loop
that was the default before), in the same run; the best validation loss each side reached over the same trials
(batching must not change what a search finds: equal up to dropout masks); and each side's peak memory
above the process's baseline. Every measurement runs in a fresh process (same start for both sides) under
one torch thread (`--workers` processes at once for the sequential side, `--batched-threads` for the
batched one); the two sides alternate `--repeats` times and each keeps its fastest time (the machine
may be shared). Cells are cached in `--cache` (JSON), so an interrupted run resumes where it stopped.

    .venv/bin/python benchmarks/population.py                       # digits and a 50,000-row set, K=4,16,64
    .venv/bin/python benchmarks/population.py --datasets digits --ks 16 --max-epochs 5   # quick
    .venv/bin/python benchmarks/population.py --device cuda         # on a GPU

On the large set the sequential side trains at most `--sequential-trials` of the K configurations (its
rate does not depend on K); the best losses are then compared over those configurations only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

LARGE = "classification"


def cell(args: dict[str, Any], side: str, k: int, part: int = 0, parts: int = 1) -> dict[str, float]:
    """One side of one (dataset, K) cell, in this (fresh) process; with `parts` > 1, this process's share of
    the sequential side (every `parts`-th configuration, as `--workers parts` would hand them out)."""
    import numpy as np
    import torch
    from hpt.backend import Result, TrialContext
    from hpt_torch.backend import MLPBackend

    threads = args["batched_threads"] if side == "batched" else 1
    torch.set_num_threads(threads)
    size = args["size"] if args["dataset"] == LARGE else None
    backend = MLPBackend(
        dataset=args["dataset"],
        size=size,
        device=args["device"],
        max_epochs=args["max_epochs"],
        threads=threads,
        trainer=args["trainer"],
    )
    space = backend.default_space()
    rng = np.random.default_rng(args["seed"] + k)
    configs = [dict(space.sample(rng)) for _ in range(k)]
    if side == "sequential":
        configs = configs[: args["sequential_trials"]]
    contexts = [TrialContext(i, seed=args["seed"] + i) for i in range(len(configs))]
    configs, contexts = configs[part::parts], contexts[part::parts]
    warm = [dict(space.sample(np.random.default_rng(12345))) for _ in range(2)]
    backend.evaluate_batch([{**w, "max_epochs": 1} for w in warm], [1, 1], [TrialContext(0), TrialContext(1)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if side == "batched":
        results = backend.evaluate_batch(configs, [None] * len(configs), contexts)
    else:
        results = [backend.evaluate(c, None, ctx) for c, ctx in zip(configs, contexts, strict=True)]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    cap = args["sequential_trials"]
    values = [r.value for r in results[:cap] if isinstance(r, Result)]
    return {
        "trials": len(configs),
        "seconds": seconds,
        "per_minute": len(configs) / seconds * 60,
        "best_valid_loss": min(values) if values else float("nan"),
        "peak_mib": peak / 1024,
        "failed": sum(not isinstance(r, Result) for r in results),
    }


def run_cell(args: dict[str, Any], side: str, k: int) -> dict[str, float]:
    """A cell in fresh processes: one, or `workers` at once for the sequential side (trials/min of them all)."""
    parts = args["workers"] if side == "sequential" else 1
    context = multiprocessing.get_context("spawn")
    with context.Pool(parts) as pool:
        shares = pool.starmap(cell, [(args, side, k, part, parts) for part in range(parts)])
    trials, seconds = sum(s["trials"] for s in shares), max(s["seconds"] for s in shares)
    return {
        "trials": trials,
        "seconds": seconds,
        "per_minute": trials / seconds * 60,
        "best_valid_loss": min(s["best_valid_loss"] for s in shares),
        "peak_mib": max(s["peak_mib"] for s in shares),
        "failed": sum(s["failed"] for s in shares),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=f"digits,{LARGE}", help="comma-separated mlp datasets")
    parser.add_argument("--size", type=int, default=50_000, help=f"rows of the synthetic `{LARGE}` set")
    parser.add_argument("--ks", default="4,16,64", help="batch sizes K (--batch-trials)")
    parser.add_argument("--max-epochs", type=int, default=20, help="the backend's max_epochs (patience stays 8)")
    parser.add_argument("--large-max-epochs", type=int, default=3, help="max_epochs on the large set")
    parser.add_argument("--sequential-trials", type=int, default=64, help="most trials timed one by one per cell")
    parser.add_argument("--large-sequential-trials", type=int, default=8, help="the same on the large set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="alternating measurements per side")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="sequential side: trials in parallel processes")
    parser.add_argument("--batched-threads", type=int, default=1, help="torch threads of the batched side")
    parser.add_argument(
        "--trainer", default="stacked", help="sequential side: stacked (a stack of one, hpt run's default) or autograd"
    )
    parser.add_argument("--cache", default=".hpt/population-benchmark.json", help="results kept between runs")
    args = parser.parse_args()
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

    print(
        f"default mlp space, device {args.device}, seed {args.seed}; sequential: {args.workers} worker(s) of 1 "
        f"thread, {args.trainer} trainer; batched: {args.batched_threads} thread(s)"
    )
    print(
        f"{'dataset':<16}{'K':>4}{'epochs':>7}{'seq/min':>9}{'batch/min':>11}{'speed-up':>10}"
        f"{'seq best':>10}{'batch best':>12}{'seq MiB':>9}{'batch MiB':>11}"
    )
    for dataset in args.datasets.split(","):
        large = dataset == LARGE
        for k in [int(x) for x in args.ks.split(",")]:
            settings = {
                "dataset": dataset,
                "size": args.size,
                "device": args.device,
                "seed": args.seed,
                "max_epochs": args.large_max_epochs if large else args.max_epochs,
                "sequential_trials": args.large_sequential_trials if large else args.sequential_trials,
                "workers": args.workers,
                "batched_threads": args.batched_threads,
                "trainer": args.trainer,
            }
            row = {}
            for repeat in range(args.repeats):
                for side in ("sequential", "batched"):
                    key = json.dumps({**settings, "k": k, "side": side, "repeat": repeat}, sort_keys=True)
                    if key not in cache:
                        cache[key] = run_cell(settings, side, k)
                        cache_path.parent.mkdir(parents=True, exist_ok=True)
                        cache_path.write_text(json.dumps(cache, indent=1))
                    if side not in row or cache[key]["per_minute"] > row[side]["per_minute"]:
                        row[side] = cache[key]
            seq, bat = row["sequential"], row["batched"]
            print(
                f"{dataset:<16}{k:>4}{settings['max_epochs']:>7}{seq['per_minute']:>9.1f}{bat['per_minute']:>11.1f}"
                f"{bat['per_minute'] / seq['per_minute']:>9.2f}x{seq['best_valid_loss']:>10.4f}"
                f"{bat['best_valid_loss']:>12.4f}{seq['peak_mib']:>9.1f}{bat['peak_mib']:>11.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
