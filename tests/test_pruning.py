"""The median rule follows the study's direction: it stops the worse half, whichever way is better."""

from __future__ import annotations

import statistics

import hpt
import pytest
from hpt.space import Float
from hpt.trial import TrialState


def _curve(params, ctx):
    for step in range(6):
        ctx.report(step, params["x"])
        if ctx.should_stop():
            raise hpt.TrialPruned
    return params["x"]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_pruned_trials_are_the_worse_ones(direction):
    study = hpt.optimize(
        _curve,
        {"x": Float(0, 1)},
        strategy="random",
        trials=30,
        seed=1,
        direction=direction,
        prune="median",
        prune_options={"warmup_steps": 1, "min_trials": 3},
    )
    pruned = [t.params["x"] for t in study.trials if t.state is TrialState.PRUNED]
    complete = [t.params["x"] for t in study.trials if t.state is TrialState.COMPLETE]
    assert pruned and complete
    if direction == "minimize":
        assert statistics.mean(pruned) > statistics.mean(complete)
    else:
        assert statistics.mean(pruned) < statistics.mean(complete)
