"""Tune a custom Python objective with the API: a function of a params dict, a space, a strategy.

    python examples/custom_objective.py --trials 40

The objective here is a cheap stand-in for "train a model and return its validation loss".
`tracking=True` would log the study to MLflow (./mlflow.db).
"""

import argparse
import math

import hpt

SPACE = {
    "learning_rate": hpt.Float(1e-4, 1e-1, log=True),
    "n_layers": hpt.Int(1, 4),
    "activation": hpt.Categorical(["relu", "tanh"]),
}


def objective(params: dict) -> float:
    """Lowest near learning_rate = 3e-3, two layers, relu."""
    lr_term = (math.log10(params["learning_rate"]) - math.log10(3e-3)) ** 2
    depth_term = 0.1 * (params["n_layers"] - 2) ** 2
    return lr_term + depth_term + (0.0 if params["activation"] == "relu" else 0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--strategy", default="random")
    args = parser.parse_args()
    study = hpt.optimize(objective, SPACE, strategy=args.strategy, trials=args.trials, seed=0)
    print(f"best value {study.best_value:.4f} after {len(study.trials)} trials")
    for name, value in study.best_params.items():
        print(f"  {name} = {value}")


if __name__ == "__main__":
    main()
