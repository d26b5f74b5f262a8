"""Population training: trials per minute of K configurations trained as one stacked model
(`MLPBackend.evaluate_batch`, what `hpt run --batch-trials K` uses) against the same K trained one
after another (`MLPBackend.evaluate`, what `hpt run` does), measured in the same run.

The K configurations share an architecture (`--hidden`, `--neurons`, relu, `--batch-size`) and draw
their scalar hyperparameters at random: optimizer among `--optimizers`, learning rate, L2, L1,
schedule, warmup, init. Both sides train the same configurations with the same seeds for `--epochs`
epochs (early stopping off) under the same thread cap. Medians over `--repeats`. The sequential rate
is measured on at most `--sequential-trials` of the K configurations (its rate does not depend on K).

    .venv/bin/python benchmarks/population.py                                   # digits + 50k rows, K=1,4,16,64
    .venv/bin/python benchmarks/population.py --datasets digits --ks 1,16 --repeats 1 --epochs 2   # quick
    .venv/bin/python benchmarks/population.py --device cuda                     # on a GPU
    .venv/bin/python benchmarks/population.py --engines-only                    # stacking engines only

`--engines` (on by default) also times one training step's forward and backward of K models three ways:
one after another, `torch.func` (`stack_module_state` + `functional_call` + `vmap(grad)`), and the
batched matrix products of `hpt_torch.stacked` that population training uses.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from hpt.backend import TrialContext
from hpt_torch.backend import MLPBackend
from hpt_torch.network import build_mlp
from hpt_torch.population import layer_shapes
from hpt_torch.stacked import FlatLayout, forward, member_losses
from hpt_torch.training import resolve_device
from torch.func import functional_call, grad, stack_module_state, vmap

ENGINE_INPUTS, ENGINE_CLASSES = 64, 10


def configurations(k: int, args: argparse.Namespace, seed: int) -> list[dict]:
    """K configurations of one architecture with random scalar hyperparameters."""
    rng = np.random.default_rng(seed)
    optimizers = args.optimizers.split(",")
    return [
        {
            "n_hidden": args.hidden,
            "n_neurons": args.neurons,
            "activation": "relu",
            "batch_size": args.batch_size,
            "optimizer": str(rng.choice(optimizers)),
            "learning_rate": float(10 ** rng.uniform(-4, -2)),
            "momentum": float(rng.uniform(0.5, 0.99)),
            "l2": float(10 ** rng.uniform(-8, -2)),
            "l1": float(10 ** rng.uniform(-8, -4)),
            "dropout": float(rng.uniform(0.0, args.max_dropout)),
            "lr_schedule": str(rng.choice(["constant", "exponential", "step", "cosine"])),
            "warmup_epochs": int(rng.integers(0, 3)),
            "init": str(rng.choice(["default", "he", "xavier", "lecun"])),
            "max_epochs": args.epochs,
            "patience": args.epochs + 1,
        }
        for _ in range(k)
    ]


def contexts(k: int) -> list[TrialContext]:
    return [TrialContext(i, seed=i) for i in range(k)]


def sequential_seconds(backend: MLPBackend, configs: list[dict]) -> float:
    start = time.perf_counter()
    for params, ctx in zip(configs, contexts(len(configs)), strict=True):
        backend.evaluate(params, None, ctx)
    return time.perf_counter() - start


def batched_seconds(backend: MLPBackend, configs: list[dict]) -> float:
    start = time.perf_counter()
    results = backend.evaluate_batch(configs, [None] * len(configs), contexts(len(configs)))
    seconds = time.perf_counter() - start
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise SystemExit(f"a batched member failed: {failed[0]}")
    return seconds


def median_ms(step: Callable[[], object], repeats: int, calls: int = 20) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        times.append((time.perf_counter() - start) / calls * 1000)
    return statistics.median(times)


def engine_steps(k: int, args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds of one forward + backward of K models: one by one, torch.func vmap, stacked bmm."""
    device = resolve_device(args.device)
    params = {"n_hidden": args.hidden, "n_neurons": args.neurons, "layer_shape": "constant"}
    params |= {"activation": "relu", "dropout": 0.0, "init": "default"}
    models = [build_mlp(params, ENGINE_INPUTS, ENGINE_CLASSES).to(device) for _ in range(k)]
    x = torch.randn(k, args.batch_size, ENGINE_INPUTS, device=device)
    y = torch.randint(0, ENGINE_CLASSES, (k, args.batch_size), device=device)

    def one_by_one() -> None:
        for model, xb, yb in zip(models, x, y, strict=True):
            torch.autograd.grad(F.cross_entropy(model(xb), yb), list(model.parameters()))

    stacked_params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def loss(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(skeleton, (p, b), (xb,)), yb)

    vmapped = vmap(grad(loss))
    shapes = layer_shapes(params, ENGINE_INPUTS, ENGINE_CLASSES)
    layout = FlatLayout([shapes] * k)
    flat = torch.stack([layout.row([p.detach() for p in m.parameters()], device) for m in models])
    leaves = [t.detach().requires_grad_() for pair in layout.views(flat) for t in pair]
    pairs = list(zip(leaves[0::2], leaves[1::2], strict=True))

    def bmm() -> None:
        out = forward(pairs, x, "relu")
        torch.autograd.grad(member_losses("classification", out, y).sum(), leaves)

    def synced(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        return run

    return {
        "one by one": median_ms(synced(one_by_one), args.repeats),
        "vmap": median_ms(synced(lambda: vmapped(stacked_params, buffers, x, y)), args.repeats),
        "bmm": median_ms(synced(bmm), args.repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,classification", help="comma-separated mlp datasets")
    parser.add_argument("--size", type=int, default=50_000, help="rows of the synthetic `classification` set")
    parser.add_argument("--ks", default="1,4,16,64", help="population sizes")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequential-trials", type=int, default=16, help="most trials timed one by one per K")
    parser.add_argument("--hidden", type=int, default=2)
    parser.add_argument("--neurons", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizers", default="adam,adamw", help="drawn per member (one update rule stacks)")
    parser.add_argument("--max-dropout", type=float, default=0.2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of a trial (the backend's cap)")
    parser.add_argument("--engines", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--engines-only", action="store_true", help="skip the trials-per-minute table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(x) for x in args.ks.split(",")]

    if args.engines or args.engines_only:
        print(f"one step, forward + backward, {args.hidden}x{args.neurons} relu, batch {args.batch_size} (ms)")
        print(f"{'K':>4}{'one by one':>12}{'vmap':>10}{'bmm':>10}{'vmap x':>9}{'bmm x':>9}")
        for k in ks:
            ms = engine_steps(k, args)
            base = ms["one by one"]
            print(
                f"{k:>4}{base:>12.2f}{ms['vmap']:>10.2f}{ms['bmm']:>10.2f}"
                f"{base / ms['vmap']:>8.2f}x{base / ms['bmm']:>8.2f}x",
                flush=True,
            )
        if args.engines_only:
            return

    print(
        f"{args.hidden}x{args.neurons} relu MLP, batch {args.batch_size}, {args.epochs} epochs, "
        f"optimizers {args.optimizers}, device {args.device}, {args.threads} thread(s), median of {args.repeats}"
    )
    print(f"{'dataset':<16}{'K':>4}{'sequential/min':>16}{'batched/min':>13}{'speed-up':>10}")
    for dataset in args.datasets.split(","):
        size = args.size if dataset == "classification" else None
        backend = MLPBackend(dataset=dataset, size=size, device=args.device, threads=args.threads)
        warm = configurations(2, args, seed=0)
        backend.evaluate_batch(warm, [None, None], contexts(2))  # first-call costs (allocator, kernels)
        backend.evaluate(warm[0], None, TrialContext(0, seed=0))
        for k in ks:
            configs = configurations(k, args, seed=k)
            alone = configs[: min(k, args.sequential_trials)]
            sequential, batched = [], []
            for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both sides
                sequential.append(len(alone) / sequential_seconds(backend, alone) * 60)
                batched.append(k / batched_seconds(backend, configs) * 60)
            seq, bat = statistics.median(sequential), statistics.median(batched)
            print(f"{dataset:<16}{k:>4}{seq:>16.1f}{bat:>13.1f}{bat / seq:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
