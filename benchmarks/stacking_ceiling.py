"""The most any stacking of the default mlp space could gain over training one network at a time, here.

Both sides train the same K default-space configurations for an epoch of a digits-sized set, with the
engine's kernels (`hpt_torch.stacked`: forward, loss gradient, written-out backward) and no
optimiser (a CPU stack steps each member with its own fused kernel, as a network alone does, so the
optimiser adds the same time to both sides):

- **alone**: each network by itself, at its own batch size: what `hpt run` does per trial.
- **floor**: one stack at the smallest batch size with none of a stack's bookkeeping. Each member's
  matrix products run at its own size into preallocated, side-by-side activation columns, the loss and
  each layer's activation run once for the whole stack, and no inputs are gathered. No padding is paid,
  and no Python runs per member beyond the products. A real stack does all of this and more, so it is
  slower than the floor.

Every member uses ReLU and no dropout. Element-wise work costs both sides the same, and other
activations or dropout would add equal time to each, lowering the ratio. `alone / floor` is therefore
an upper bound on what population training can gain over one network at a time on this machine,
whatever its implementation. Per K it is paired over `--seeds` draws of the configurations, under one
torch thread, best of `--repeats` timings. Results are cached in `--cache` (JSON).

    .venv/bin/python benchmarks/stacking_ceiling.py                 # K = 4, 16, 64; 5 draws each
    .venv/bin/python benchmarks/stacking_ceiling.py --ks 16 --seeds 3 --rows 50000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hpt_torch import kernels
from hpt_torch.hyperparams import default_space, resolve
from hpt_torch.network import layer_shapes
from hpt_torch.stacked import FlatLayout, Shapes, backward, forward, layer_plans, loss_gradient

TASK = "classification"


def draw(k: int, seed: int) -> list[dict[str, Any]]:
    """K configurations of the default space, with ReLU and no dropout (see the module docstring)."""
    rng = np.random.default_rng(seed)
    space = default_space()
    return [resolve({**dict(space.sample(rng)), "activation": "relu", "dropout": 0.0}) for _ in range(k)]


def alone_epoch(configs: list[dict[str, Any]], x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """An epoch of each network by itself: a stack of one at its own batch size (as the engine trains a trial)."""
    n, cpu = len(y), torch.device("cpu")
    networks = []
    for p in configs:
        layout = FlatLayout([layer_shapes(p, x.shape[1], int(y.max()) + 1)])
        flat = torch.randn(1, layout.size) * 0.05
        grad = torch.zeros_like(flat)
        plans = layer_plans([["relu"] * p["n_hidden"]], [0.0], cpu)
        networks.append((p["batch_size"], layout.views(flat), layout.views(grad), plans))

    def run() -> None:
        for batch_size, layers, grads, plans in networks:
            order = torch.randperm(n)
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                out, tape = forward(layers, x[rows].unsqueeze(0), plans)
                _, grad_out = loss_gradient(TASK, out, y[rows].unsqueeze(0), 1 / len(rows))
                backward(layers, grads, plans, tape, grad_out, False)

    return run


def floor_epoch(configs: list[dict[str, Any]], x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """An epoch of the cheapest stack conceivable (see the module docstring)."""
    n, n_in, n_out, k = len(y), x.shape[1], int(y.max()) + 1, len(configs)
    micro = min(p["batch_size"] for p in configs)
    shapes: list[Shapes] = [layer_shapes(p, n_in, n_out) for p in configs]
    weights = [[torch.randn(i, o) * 0.05 for o, i in s] for s in shapes]
    weights_t = [[w.t() for w in member] for member in weights]
    grads = [[torch.zeros_like(w) for w in member] for member in weights]
    depth = max(len(s) for s in shapes) - 1
    columns: list[dict[int, slice]] = []
    for position in range(depth):
        start, present = 0, {}
        for m, s in enumerate(shapes):
            if len(s) - 1 > position:
                present[m] = slice(start, start + s[position][0])
                start += s[position][0]
        columns.append(present)
    z = [torch.empty(micro, max(c.stop for c in present.values())) for present in columns]
    up = [torch.empty_like(t) for t in z]
    z_cols = [{m: t[:, c] for m, c in present.items()} for t, present in zip(z, columns, strict=True)]
    z_cols_t = [{m: v.t() for m, v in cols.items()} for cols in z_cols]
    up_cols = [{m: t[:, c] for m, c in present.items()} for t, present in zip(up, columns, strict=True)]
    inputs = x[:micro].expand(k, micro, n_in).contiguous()
    inputs_t = [inputs[m].t() for m in range(k)]
    out = torch.empty(micro, k * n_out)
    out_cols = [out[:, m * n_out : (m + 1) * n_out] for m in range(k)]
    targets = y[:micro].expand(k, micro).contiguous()
    relu_backward = kernels.PRIVATE_BACKWARD["relu"]  # writes into its first argument

    def step() -> None:
        for position, present in enumerate(columns):
            for m in present:
                source = inputs[m] if position == 0 else z_cols[position - 1][m]
                torch.mm(source, weights[m][position], out=z_cols[position][m])
            z[position].relu_()
        for m, s in enumerate(shapes):
            torch.mm(z_cols[len(s) - 2][m], weights[m][-1], out=out_cols[m])
        _, grad_out = loss_gradient(TASK, out.view(micro, k, n_out).transpose(0, 1), targets, 1 / micro)
        for m, s in enumerate(shapes):
            last = len(s) - 1
            grads[m][last].addmm_(z_cols_t[last - 1][m], grad_out[m])
            torch.mm(grad_out[m], weights_t[m][last], out=up_cols[last - 1][m])
        for position in range(depth - 1, -1, -1):
            relu_backward(up[position], z[position], z[position])
            for m in columns[position]:
                source = inputs_t[m] if position == 0 else z_cols_t[position - 1][m]
                grads[m][position].addmm_(source, up_cols[position][m])
                if position:
                    torch.mm(up_cols[position][m], weights_t[m][position], out=up_cols[position - 1][m])

    steps = -(-n // micro)

    def run() -> None:
        for _ in range(steps):
            step()

    return run


def best_time(run: Callable[[], None], repeats: int) -> float:
    run()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="4,16,64", help="stack sizes K")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the K configurations per K")
    parser.add_argument("--rows", type=int, default=1437, help="training rows (digits: 1437)")
    parser.add_argument("--inputs", type=int, default=64, help="input features (digits: 64)")
    parser.add_argument("--classes", type=int, default=10, help="output classes (digits: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per side; the fastest counts")
    parser.add_argument("--cache", default=".hpt/stacking-ceiling.json", help="results kept between runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    cache_path = Path(args.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, args.inputs, generator=generator)
    y = torch.randint(0, args.classes, (args.rows,), generator=generator)
    print(f"{args.rows} rows, {args.inputs} inputs, {args.classes} classes; 1 thread; ms per epoch, "
          f"best of {args.repeats}")  # fmt: skip
    print(f"{'K':>4}{'alone ms':>10}{'floor ms':>10}{'ceiling (alone / floor)':>26}")
    for k in [int(v) for v in args.ks.split(",")]:
        ratios, alone_ms, floor_ms = [], [], []
        for seed in range(args.seeds):
            key = json.dumps({"k": k, "seed": seed, "rows": args.rows, "inputs": args.inputs,
                              "classes": args.classes, "repeats": args.repeats}, sort_keys=True)  # fmt: skip
            if key not in cache:
                configs = draw(k, seed)
                cache[key] = {
                    "alone": best_time(alone_epoch(configs, x, y), args.repeats),
                    "floor": best_time(floor_epoch(configs, x, y), args.repeats),
                }
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                cache_path.write_text(json.dumps(cache, indent=1))
            alone_ms.append(cache[key]["alone"] * 1e3)
            floor_ms.append(cache[key]["floor"] * 1e3)
            ratios.append(cache[key]["alone"] / cache[key]["floor"])
        print(
            f"{k:>4}{statistics.median(alone_ms):>10.1f}{statistics.median(floor_ms):>10.1f}"
            f"{statistics.median(ratios):>12.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
