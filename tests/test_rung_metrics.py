"""A promoted trial's summary metrics (`best_*`, `epochs`) are logged at the budget of each rung it
reached, so its MLflow history shows one point per rung instead of overwrites at step 0."""

from __future__ import annotations

import hpt
from conftest import child_runs
from hpt.space import Float
from mlflow.tracking import MlflowClient


def _train(params, ctx):
    epochs = int(ctx.budget)
    return hpt.Result(params["x"] / epochs, metrics={"epochs": epochs, "best_valid_loss": params["x"] / epochs})


def test_summary_metrics_are_stepped_by_budget(store):
    study = hpt.create_study(
        _train,
        {"x": Float(0, 1)},
        strategy="successive-halving",
        strategy_options={"min_budget": 1, "max_budget": 9, "eta": 3, "n_configs": 9},
        tracking=store,
        seed=0,
    )
    study.optimize(9)
    client = MlflowClient(store)
    top = next(t for t in study.trials if t.budget_history == [1, 3, 9])
    run = next(
        r for r in child_runs(store, study.tracker.parent_run_id) if r.info.run_name.endswith(f"{top.number:04d}")
    )
    history = client.get_metric_history(run.info.run_id, "epochs")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (3, 3.0), (9, 9.0)]
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "best_valid_loss")]
    assert steps == [1, 3, 9]
