"""A scikit-learn training script that logs to MLflow and knows nothing of hpt: an MLPClassifier on
digits, trained epoch by epoch with `partial_fit`, its validation loss and accuracy logged each epoch.

Run by `hpt run --backend command` in a tracked study, `mlflow.start_run()` below picks up the trial's
own child run (hpt passes MLFLOW_RUN_ID and MLFLOW_TRACKING_URI), so everything logged here lands in
the trial's run and hpt reads the objective from it; run by hand, it logs a run of its own:

    python examples/train_sklearn_mlflow.py --lr 0.001 --alpha 1e-4 --epochs 10

With --checkpoint-dir it pickles the model there after every epoch and, run again with more --epochs,
continues where it stopped.
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (adam)")
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden", type=int, default=64, help="units of the hidden layer")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", help="save to / continue from this directory")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    classes = np.unique(y)
    checkpoint = Path(args.checkpoint_dir) / "model.pkl" if args.checkpoint_dir else None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if checkpoint is not None and checkpoint.exists():
        model, start = pickle.loads(checkpoint.read_bytes())
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(args.hidden,), learning_rate_init=args.lr, alpha=args.alpha, random_state=args.seed
        )
        start = 0
    with mlflow.start_run():  # the trial's run under hpt (MLFLOW_RUN_ID), a new run otherwise
        mlflow.set_tag("script", "train_sklearn_mlflow.py")
        for epoch in range(start, args.epochs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(x_train, y_train, classes=classes)
            proba = model.predict_proba(x_valid)
            metrics = {"val_loss": log_loss(y_valid, proba, labels=classes),
                       "val_accuracy": accuracy_score(y_valid, classes[proba.argmax(1)])}  # fmt: skip
            mlflow.log_metrics(metrics, step=epoch)
            print(f"epoch {epoch}: {metrics}", flush=True)
            if checkpoint is not None:
                checkpoint.write_bytes(pickle.dumps((model, epoch + 1)))


if __name__ == "__main__":
    main()
