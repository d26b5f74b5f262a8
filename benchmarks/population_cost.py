"""Fit `hpt_torch.population.COST_MODELS` (what `stack_groups` uses to cut a batch into stacks) on this machine.

Times stacks of random default-space members (K = 1 to 32, some of one batch size, some mixed) trained
by `MLPBackend.evaluate_population` for a few epochs under one torch thread, fits the model's
coefficients by non-negative least squares on two thirds of the stacks, and prints them with the median
relative error of the prediction on the fitted stacks and on the third held out: one model for single
networks (a stack of one) and one for stacks of several. Timings are cached in `--cache` (JSON), so an
interrupted run resumes.

    .venv/bin/python benchmarks/population_cost.py                  # digits, 150 stacks, 3 epochs each
    .venv/bin/python benchmarks/population_cost.py --stacks 300 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import astuple, fields
from pathlib import Path
from typing import Any

import numpy as np


def draw_stack(space: Any, rng: np.random.Generator) -> list[dict[str, Any]]:
    """K random members (one in three stacks is a single network); half the stacks of several share one
    batch size (what a bucket of a block looks like)."""
    k = int(rng.choice([1, 1, 1, 1, 2, 4, 8, 16, 32]))
    members = [dict(space.sample(rng)) for _ in range(k)]
    if rng.random() < 0.5:
        size = members[0]["batch_size"]
        members = [{**m, "batch_size": size} for m in members]
    return members


def time_stack(backend: Any, members: list[dict[str, Any]], epochs: int) -> float:
    """Seconds per epoch of the stack (members pinned to `epochs` epochs, no early stopping)."""
    from hpt.backend import TrialContext
    from hpt_torch.hyperparams import resolve

    params = [resolve({**m, "max_epochs": epochs, "patience": epochs + 1}) for m in members]
    contexts = [TrialContext(i, seed=i) for i in range(len(params))]
    start = time.perf_counter()
    backend.evaluate_population(params, [None] * len(params), contexts)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--stacks", type=int, default=150, help="random stacks to time")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=".hpt/population-cost.json", help="timings kept between runs")
    args = parser.parse_args()

    import torch
    from hpt_torch.backend import MLPBackend
    from hpt_torch.hyperparams import resolve
    from hpt_torch.population import COST_MODELS, CostModel, StackFeatures, member_widths
    from scipy.optimize import nnls

    torch.set_num_threads(1)
    backend = MLPBackend(dataset=args.dataset, max_epochs=args.epochs, threads=1)
    fold = backend.folds[0]
    rows, n_in = fold.x_train.shape
    n_out = backend.n_classes if backend.n_classes > 2 else 1
    space = backend.default_space()
    rng = np.random.default_rng(args.seed)
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    time_stack(backend, draw_stack(space, np.random.default_rng(12345))[:2], 1)  # warm-up

    x, y, sizes = [], [], []
    for index in range(args.stacks):
        members = draw_stack(space, rng)
        key = json.dumps({"dataset": args.dataset, "epochs": args.epochs, "seed": args.seed, "index": index})
        if key not in cache:
            cache[key] = time_stack(backend, members, args.epochs)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=1))
        params = [resolve(m) for m in members]
        depth = max(p["n_hidden"] for p in params)
        stack = StackFeatures(rows, n_in, n_out)
        for p in params:
            stack = stack.add(member_widths(p, depth), p["n_hidden"], p["batch_size"], p["activation"])
        x.append(stack.terms())
        y.append(cache[key])
        sizes.append(len(members))
        print(f"stack {index + 1}/{args.stacks}: K={len(members)} {cache[key] * 1e3:.1f} ms/epoch", flush=True)

    x_arr, y_arr, k_arr = np.array(x), np.array(y), np.array(sizes)
    held_out = np.arange(len(y)) % 3 == 2
    names = [f.name for f in fields(CostModel)]
    current = COST_MODELS["cpu"]
    for label, part, now in (("alone", k_arr == 1, current.alone), ("stacked", k_arr > 1, current.stacked)):
        fit = part & ~held_out
        weights = 1 / y_arr[fit]  # relative errors: small stacks count as much as large ones
        coef, _ = nnls(x_arr[fit] * weights[:, None], y_arr[fit] * weights)
        print(f"{label}=CostModel(" + ", ".join(f"{n}={v:.2g}" for n, v in zip(names, coef, strict=True)) + ")")
        for name, model_coef in (("fitted", coef), ("in population.py now", np.array(astuple(now)))):
            error = np.abs(x_arr @ model_coef - y_arr) / y_arr
            print(
                f"  {name}: median relative error {np.median(error[fit]):.1%} on the fitted stacks, "
                f"{np.median(error[part & held_out]):.1%} on the {int((part & held_out).sum())} held out"
            )


if __name__ == "__main__":
    main()
