"""Population training on the default mlp space (nothing pinned): trials per minute of K random
configurations trained by `MLPBackend.evaluate_batch` (what `hpt run --batch-trials K` does) against the
same configurations, with the same seeds, trained one after another by `MLPBackend.evaluate` (what
`hpt run` does: a stack of one each), in the same run; the best validation loss each side reached over the same trials
(batching must not change what a search finds: equal up to dropout masks); and each side's peak memory
above the process's baseline. Every measurement runs in a fresh process (same start for both sides) under
one torch thread (`--workers` processes at once for the sequential side, `--batched-threads` for the
batched one). The two sides alternate `--repeats` times. Each repeat pairs a batched measurement with
the sequential one beside it (the machine may be shared and noisy): the speed-up is the median of the
paired ratios, with a Wilcoxon signed-rank p over them (below 0.05: the difference survives noise; 6
repeats are the fewest that can show it). Rates are the medians of each side. Cells are cached in
`--cache` (JSON), so an interrupted run resumes where it stopped.

    .venv/bin/python benchmarks/population.py                       # digits and a 50,000-row set, K=4,16,64
    .venv/bin/python benchmarks/population.py --datasets digits --ks 16 --max-epochs 5   # quick
    .venv/bin/python benchmarks/population.py --device cuda         # on a GPU

With `--sequential-trials N` below K the sequential side trains only the first N configurations, and the
best losses are compared over those. That is quicker, but its rate is then of another mix of networks than
the batched side's: on the 50,000-row set the first 8 of 64 draws trained at 0.68 s a trial against 0.92 s
for all 64, which made batching look 0.6x. By default both sides train the same K configurations.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

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
    parser.add_argument("--large-sequential-trials", type=int, default=64, help="the same on the large set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=6, help="alternating measurements per side")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="sequential side: trials in parallel processes")
    parser.add_argument("--batched-threads", type=int, default=1, help="torch threads of the batched side")
    parser.add_argument("--cache", default=".hpt/population-benchmark.json", help="results kept between runs")
    args = parser.parse_args()
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}

    print(
        f"default mlp space, device {args.device}, seed {args.seed}; sequential: {args.workers} worker(s) of 1 "
        f"thread; batched: {args.batched_threads} thread(s)"
    )
    print(
        f"{'dataset':<16}{'K':>4}{'epochs':>7}{'seq/min':>9}{'batch/min':>11}{'speed-up':>10}{'p':>7}"
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
            }
            runs: dict[str, list[dict[str, float]]] = {"sequential": [], "batched": []}
            for repeat in range(args.repeats):
                for side in ("sequential", "batched"):
                    key = json.dumps({**settings, "k": k, "side": side, "repeat": repeat}, sort_keys=True)
                    if key not in cache:
                        cache[key] = run_cell(settings, side, k)
                        cache_path.parent.mkdir(parents=True, exist_ok=True)
                        cache_path.write_text(json.dumps(cache, indent=1))
                    runs[side].append(cache[key])
            print_row(dataset, k, settings["max_epochs"], runs["sequential"], runs["batched"])


def print_row(dataset: str, k: int, epochs: int, seq: list[dict[str, float]], bat: list[dict[str, float]]) -> None:
    """One cell: median rates, the median paired speed-up and its Wilcoxon p, best losses, peak memory."""
    from scipy.stats import wilcoxon

    ratios = [b["per_minute"] / s["per_minute"] for s, b in zip(seq, bat, strict=True)]
    p = wilcoxon(np.log(ratios)).pvalue if len(ratios) > 1 and len(set(ratios)) > 1 else float("nan")
    print(
        f"{dataset:<16}{k:>4}{epochs:>7}{median(seq, 'per_minute'):>9.1f}{median(bat, 'per_minute'):>11.1f}"
        f"{np.median(ratios):>9.2f}x{p:>7.3f}{seq[0]['best_valid_loss']:>10.4f}{bat[0]['best_valid_loss']:>12.4f}"
        f"{max(s['peak_mib'] for s in seq):>9.1f}{max(b['peak_mib'] for b in bat):>11.1f}",
        flush=True,
    )


def median(rows: list[dict[str, float]], name: str) -> float:
    return float(np.median([row[name] for row in rows]))


if __name__ == "__main__":
    main()
