"""Ask/tell: keep your own training loop and let hpt choose the hyperparameters.

    python examples/ask_tell_numpy.py --trials 20

A logistic-regression classifier trained by mini-batch gradient descent in plain numpy (the loop is
yours: swap in PyTorch, JAX, ...). Each epoch's validation loss goes to the study, so it shows up as a
learning curve in MLflow when the study is tracked (`--track`).
"""

import argparse

import hpt
import numpy as np

SPACE = {
    "learning_rate": hpt.Float(1e-3, 3.0, log=True),
    "batch_size": hpt.Categorical([16, 64, 256]),
    "l2": hpt.Float(1e-6, 1e-1, log=True),
    "epochs": hpt.Fixed(15),
}


def make_data(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Two overlapping Gaussian blobs in 5 dimensions, split 400 / 200."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 600)
    x = rng.normal(size=(600, 5)) + y[:, None] * np.array([1.0, 0.5, 0.0, -0.5, 0.2])
    return x[:400], y[:400], x[400:], y[400:]


def log_loss(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(1 / (1 + np.exp(-(x @ w + b))), 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train(params: dict, data: tuple[np.ndarray, ...], seed: int) -> list[tuple[int, float]]:
    """Your own loop: returns the validation loss after every epoch."""
    x_train, y_train, x_valid, y_valid = data
    rng = np.random.default_rng(seed)
    w, b = np.zeros(x_train.shape[1]), 0.0
    curve = []
    for epoch in range(params["epochs"]):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), params["batch_size"]):
            idx = order[start : start + params["batch_size"]]
            p = 1 / (1 + np.exp(-(x_train[idx] @ w + b)))
            grad = p - y_train[idx]
            w -= params["learning_rate"] * (x_train[idx].T @ grad / len(idx) + params["l2"] * w)
            b -= params["learning_rate"] * grad.mean()
        curve.append((epoch, log_loss(w, b, x_valid, y_valid)))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--track", action="store_true", help="log to MLflow (./mlflow.db)")
    args = parser.parse_args()
    data = make_data()

    def best_valid_loss(params: dict) -> float:  # what `study.optimize` would call; ask/tell below does it by hand
        return min(loss for _, loss in train(params, data, seed=0))

    study = hpt.create_study(
        best_valid_loss,
        SPACE,
        strategy=args.strategy,
        seed=0,
        tracking=args.track,
        experiment="hpt-examples",
        name="ask-tell",
    )
    with study:  # closes the study (and its MLflow run) at the end
        for _ in range(args.trials):
            trial = study.ask()
            curve = train(trial.params, data, seed=trial.number)
            study.tell(trial, min(loss for _, loss in curve), intermediate=[(e, {"valid_loss": v}) for e, v in curve])
    print(f"best validation log-loss {study.best_value:.4f} (trial {study.best_trial.number})")
    for name, value in study.best_params.items():
        print(f"  {name} = {value}")


if __name__ == "__main__":
    main()
