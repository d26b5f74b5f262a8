"""Early stopping pays: the same wall-clock budget for random and skopt at full budget, and for
hyperband with a random or skopt sampler; the best validation score each reaches, and the epochs
each spent to reach the score random reaches with its whole budget.

    python benchmarks/fidelity.py [--tasks function,digits,friedman] [--seeds 3] [--seconds 60] [--max-budget 27]

Epochs are counted from the trials' reported learning curves (a promoted trial's epochs count
once: it continues from its checkpoint). Only trials measured at the full budget count as reached
scores, so a lucky value after one epoch is not mistaken for a result. Goal: hyperband reaches
random's final score with at most a third of random's epochs (ratio <= 0.33).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import warnings

import hpt
from hpt.api import make_backend
from hpt.trial import Trial, TrialState, better

METHODS = {
    "random": {"strategy": "random"},
    "skopt": {"strategy": "skopt"},
    "hyperband+random": {"strategy": "hyperband", "sampler": "random"},
    "hyperband+skopt": {"strategy": "hyperband", "sampler": "skopt"},
}


def make_task(name: str, max_budget: int):
    """A backend and the space pins that make every full-budget trial train exactly `max_budget` epochs."""
    if name == "function":
        return make_backend("function", function="hartmann6", noise=0.5, delay=0.02, epochs=max_budget), {}
    pins = {"max_epochs": str(max_budget), "patience": str(max_budget)}
    if name == "digits":
        return make_backend("mlp", dataset="digits"), pins
    if name == "friedman":
        return make_backend("mlp", dataset="friedman", size=2000), pins
    raise SystemExit(f"unknown task {name!r}; use function, digits or friedman")


def run_study(backend, pins: dict, method: str, seed: int, seconds: float, max_budget: int) -> hpt.Study:
    spec = dict(METHODS[method])
    options = {}
    if spec["strategy"] == "hyperband":
        options = {"sampler": spec["sampler"], "min_budget": 1, "max_budget": max_budget, "eta": 3, "iterations": None}
    study = hpt.create_study(
        backend, strategy=spec["strategy"], seed=seed, tracking=False, strategy_options=options, overrides=pins
    )
    return study.optimize(None, seconds)


def epochs_of(trial: Trial) -> int:
    return len(trial.intermediate)


def anytime(study: hpt.Study, max_budget: int) -> list[tuple[int, float]]:
    """(cumulative epochs, best full-budget value so far) after each evaluation, in finishing order."""
    direction = study.directions[0]
    points, spent, best = [], 0, None
    for trial in sorted(study.trials, key=lambda t: t.finished_at or 0):
        spent += epochs_of(trial)
        full = (trial.budget is None or trial.budget >= max_budget) and trial.state is TrialState.COMPLETE
        if full and (best is None or better(trial.value, best, direction)):
            best = trial.value
        if best is not None:
            points.append((spent, best))
    return points


def epochs_to_reach(points: list[tuple[int, float]], target: float, direction: str) -> int | None:
    for spent, best in points:
        if best == target or better(best, target, direction):
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="function,digits,friedman")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="wall-clock budget of every study")
    parser.add_argument("--max-budget", type=int, default=27, help="epochs of a full-budget trial")
    args = parser.parse_args()
    logging.getLogger("hpt").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    methods = args.methods.split(",")

    with tempfile.TemporaryDirectory():
        for task in args.tasks.split(","):
            backend, pins = make_task(task, args.max_budget)
            direction = backend.direction
            print(
                f"\n== {task}: objective {backend.metric} ({direction}), {args.seconds:g} s per study, "
                f"{args.seeds} seeds, full budget {args.max_budget} epochs"
            )
            print(
                f"{'method':<18} {'best (median)':>14} {'epochs':>8} {'trials':>7} {'epochs to random':>17} "
                f"{'ratio':>6}"
            )
            results = {
                m: [run_study(backend, pins, m, seed, args.seconds, args.max_budget) for seed in range(args.seeds)]
                for m in methods
            }
            curves = {m: [anytime(s, args.max_budget) for s in studies] for m, studies in results.items()}
            for method in methods:
                bests, spent, reach, ratios = [], [], [], []
                for seed, points in enumerate(curves[method]):
                    if not points:
                        continue
                    bests.append(points[-1][1])
                    spent.append(points[-1][0])
                    base = curves.get("random", [None] * args.seeds)[seed]
                    if base:
                        needed = epochs_to_reach(points, base[-1][1], direction)
                        if needed is not None:
                            reach.append(needed)
                            ratios.append(needed / base[-1][0])
                trials = statistics.median(len(s.trials) for s in results[method])
                row = (
                    f"{method:<18} {statistics.median(bests) if bests else float('nan'):>14.5g} "
                    f"{statistics.median(spent) if spent else 0:>8.0f} {trials:>7.0f} "
                    f"{statistics.median(reach) if reach else float('nan'):>17.0f} "
                    f"{statistics.median(ratios) if ratios else float('nan'):>6.2f}"
                )
                reached = f"  (reached random's score in {len(reach)}/{args.seeds} seeds)" if method != "random" else ""
                print(row + reached)


if __name__ == "__main__":
    main()
