"""One rule for the best trial (largest budget first, then the better value), wherever it is asked for."""

from __future__ import annotations

import hpt
from conftest import invoke_json
from hpt.space import Float
from hpt.trial import Trial, TrialState, best_trial


def _trial(number: int, value: float, budget: float | None, state: TrialState = TrialState.COMPLETE) -> Trial:
    return Trial(number, {"x": float(number)}, budget=budget, state=state, values=[value])


def test_largest_budget_wins_then_the_better_value():
    trials = [_trial(0, 0.1, 1), _trial(1, 0.5, 9), _trial(2, 0.4, 9), _trial(3, 0.0, 3)]
    assert best_trial(trials, ["minimize"]).number == 2
    assert best_trial(trials, ["maximize"]).number == 1
    assert best_trial([_trial(0, 1.0, None, TrialState.FAILED)], ["minimize"]) is None
    assert best_trial([_trial(0, 1.0, None), _trial(1, 1.0, None)], ["minimize"]).number == 0


def test_hpt_best_agrees_with_the_study_and_its_tag(store):
    from mlflow.tracking import MlflowClient

    study = hpt.create_study(lambda p: p["x"], {"x": Float(0, 1)}, tracking=store, seed=0)
    for params, budget, value in (({"x": 0.1}, 1, 0.1), ({"x": 0.5}, 9, 0.5), ({"x": 0.7}, 9, 0.7)):
        study.enqueue(params, budget)
        study.tell(study.ask(), value)
    study.close()
    assert study.best_trial.number == 1
    parent = study.tracker.parent_run_id
    assert MlflowClient(store).get_run(parent).data.tags["hpt.best_trial"] == "1"
    shown = invoke_json("best", parent, "--tracking-uri", store)
    assert (shown["trial"], shown["value"]) == (1, 0.5)
