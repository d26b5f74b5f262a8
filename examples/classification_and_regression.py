"""Tune the MLP on a classification task (digits) and a regression task (diabetes) with the same
strategies and budget, and print one summary table per task.

    python examples/classification_and_regression.py --strategies random,skopt,hyperband --seeds 3 --trials 20

Every study lands in MLflow (experiment `hpt-examples`, ./mlflow.db); browse them with `hpt ui`.
Use `--quick` for a smoke run (a few tiny trials on a small subsample).
"""

import argparse

from hpt_reports.compare import compare

TASKS = {"digits": "classification", "diabetes": "regression"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="random,skopt,hyperband")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: 2 epochs on 200 rows")
    args = parser.parse_args()
    backend_options, overrides, scheduler = {}, {}, {}
    if args.quick:
        backend_options = {"size": 200}
        overrides = {"max_epochs": "2", "n_neurons": "16..32"}
        scheduler = {"min_budget": 1, "max_budget": 2}
    for dataset, kind in TASKS.items():
        result = compare(
            "mlp",
            args.strategies.split(","),
            seeds=args.seeds,
            trials=args.trials,
            backend_options={"dataset": dataset, **backend_options},
            overrides=overrides,
            strategy_options=scheduler,  # a bare option goes to every compared strategy that takes it
            experiment="hpt-examples",
            plots=f"compare-{dataset}",
        )
        print(f"\n{kind}")
        print(result.table_text())
        print(f"anytime plot: {result.plot}")


if __name__ == "__main__":
    main()
