"""Training throughput of the mlp backend's loop against a conventional DataLoader loop.

Both train the same network with the same optimiser for the same epochs and evaluate the
validation split after every epoch. The baseline is what a typical PyTorch script does:
`DataLoader(TensorDataset(...), shuffle=True)` with torch's default thread count, and
scikit-learn metrics on host copies. Ratios are speed-ups over that baseline, measured in the
same run. A last section times whole trials of the default search space (`hpt run`'s).

    .venv/bin/python benchmarks/mlp_throughput.py                 # digits, 30 epochs, 3 repeats
    .venv/bin/python benchmarks/mlp_throughput.py --epochs 5 --repeats 1 --trials 3   # quick
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from hpt.backend import TrialContext
from hpt_torch.backend import MLPBackend
from hpt_torch.engine import Member, Stack
from hpt_torch.hyperparams import resolve
from hpt_torch.network import build_mlp, initial_weights
from hpt_torch.training import cpu_settings
from sklearn.metrics import accuracy_score
from torch.utils.data import DataLoader, TensorDataset


def dataloader_loop(backend: MLPBackend, params: dict, epochs: int, threads: int) -> float:
    """A conventional loop; returns seconds."""
    fold = backend.folds[0]
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = build_mlp(params, initial_weights(params, fold.x_train.shape[1], backend.n_classes, 0))
    optimizer = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    loader = DataLoader(
        TensorDataset(torch.as_tensor(fold.x_train), torch.as_tensor(fold.y_train)),
        batch_size=params["batch_size"],
        shuffle=True,
    )
    x_valid, y_valid = torch.as_tensor(fold.x_valid), fold.y_valid
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(x_valid)
            torch.nn.functional.cross_entropy(out, torch.as_tensor(y_valid)).item()
            accuracy_score(y_valid, out.argmax(1).numpy())
    return time.perf_counter() - start


def hpt_loop(backend: MLPBackend, params: dict, epochs: int, threads: int) -> float:
    """The backend's engine (a stack of one: tensors on the device, batches by index); returns seconds."""
    with cpu_settings(threads):
        stack = Stack([Member(params, 0, 0, epochs)], backend.data(1))
        start = time.perf_counter()
        stack.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--size", type=int, help="rows of a synthetic dataset (e.g. --dataset classification)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-neurons", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10, help="random default-space trials to time (0: skip)")
    args = parser.parse_args()

    backend = MLPBackend(dataset=args.dataset, size=args.size)
    if backend.task != "classification" or backend.n_classes < 3:
        parser.error("the throughput comparison uses a multi-class dataset (digits, wine, iris, classification)")
    params = resolve(
        {
            "n_neurons": args.n_neurons,
            "batch_size": args.batch_size,
            "patience": args.epochs + 1,
            "max_epochs": args.epochs,
        }
    )
    cores = torch.get_num_threads()
    rows = len(backend.folds[0].y_train)
    print(
        f"{backend.describe()}: {rows} training rows, 2x{args.n_neurons} relu, batch {args.batch_size}, "
        f"{args.epochs} epochs, best of {args.repeats}; torch {torch.__version__}, {cores} threads available"
    )
    hpt_loop(backend, params, 1, 1)  # warm-up: lazy imports and allocator
    contenders = [
        ("DataLoader loop, default threads (baseline)", dataloader_loop, cores),
        ("DataLoader loop, 1 thread", dataloader_loop, 1),
        ("hpt loop, default threads", hpt_loop, cores),
        ("hpt loop, 1 thread (the backend's default)", hpt_loop, 1),
    ]
    baseline = None
    for label, loop, threads in contenders:
        torch.set_num_threads(cores)
        seconds = min(loop(backend, params, args.epochs, threads) for _ in range(args.repeats))
        baseline = baseline or seconds
        print(f"  {label:<46} {args.epochs * rows / seconds:>10.0f} samples/s   x{baseline / seconds:.2f}")
    torch.set_num_threads(cores)

    if args.trials:
        space, rng = backend.default_space(), np.random.default_rng(0)
        durations, epochs = [], []
        for number in range(args.trials):
            start = time.perf_counter()
            result = backend.evaluate(space.sample(rng), None, TrialContext(number, seed=number))
            durations.append(time.perf_counter() - start)
            epochs.append(result.metrics["epochs"])
        print(
            f"default space, {args.trials} random trials: median {statistics.median(durations):.2f} s/trial "
            f"(max {max(durations):.2f} s), median {statistics.median(epochs):.0f} epochs"
        )


if __name__ == "__main__":
    main()
