"""End to end: trials per minute of a whole study (`hpt.optimize`, random search over the default mlp space,
no tracking) one trial at a time on the device, with `--batch-trials K` on the device, and with `--workers N`
processes of one CPU thread each on the same machine's CPU (their pool started before the clock starts, as a
long study's would be). Each mode prints its line as soon as it is measured.

    python benchmarks/population_e2e.py --device cuda --modes one:64,batch64:256,batchauto:256,workers:256
    python benchmarks/population_e2e.py --device cpu --modes one:16,workers:16 --workers 2   # a quick check
"""

from __future__ import annotations

import argparse
import time


def measure(mode: str, trials: int, args: argparse.Namespace) -> tuple[float, float]:
    """(trials per minute, best validation loss) of one mode: `one`, `batchK` (`--batch-trials K`, a number or
    auto), `workers` (`--workers` processes on the CPU)."""
    import hpt
    from hpt_torch.backend import MLPBackend

    device = "cpu" if mode == "workers" else args.device
    settings = {"strategy": "random", "seed": args.seed, "trials": trials, "tracking": False}
    if mode.startswith("batch"):
        k = mode.removeprefix("batch")
        settings["batch_trials"] = int(k) if k.isdigit() else k
    if mode == "workers":
        settings["workers"] = args.workers
    backend = MLPBackend(dataset=args.dataset, device=device, max_epochs=args.max_epochs)
    study = hpt.create_study(backend, **settings)
    start = time.perf_counter()
    study.optimize(trials)
    seconds = time.perf_counter() - start
    return trials / seconds * 60, study.best_trial.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=16, help="processes of the workers mode (CPU)")
    parser.add_argument("--modes", default="one:64,batch64:256,workers:256", help="mode:trials, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.dataset}, {args.max_epochs} epochs, random search, device {args.device}", flush=True)
    print(f"{'mode':<34}{'trials':>7}{'trials/min':>12}{'best':>9}", flush=True)
    for item in args.modes.split(","):
        mode, trials = item.split(":")
        if mode == "one":
            label = f"one at a time ({args.device})"
        elif mode == "workers":
            label = f"--workers {args.workers} (cpu)"
        else:
            label = f"--batch-trials {mode.removeprefix('batch')} ({args.device})"
        rate, best = measure(mode, int(trials), args)
        print(f"{label:<34}{int(trials):>7}{rate:>12.1f}{best:>9.4f}", flush=True)


if __name__ == "__main__":
    main()
