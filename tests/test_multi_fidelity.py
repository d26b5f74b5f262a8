"""Successive halving, hyperband, ASHA and median pruning on the fidelity-aware function backend."""

from __future__ import annotations

from collections import Counter

import hpt
import pytest
from conftest import child_runs
from hpt import PluginError, Strategy, Suggestion, TrialState
from hpt.observers import StudyObserver
from hpt_basic.function_backend import FunctionBackend
from hpt_basic.multi_fidelity import rung_budgets
from mlflow.tracking import MlflowClient

NOISY = {"function": "branin", "noise": 2.0}


class StartLog(StudyObserver):
    """Records (trial number, budget) in the order evaluations start."""

    def __init__(self):
        self.starts = []

    def trial_started(self, study, trial):
        self.starts.append((trial.number, trial.budget))


def run(strategy, trials, workers=None, **options):
    log = StartLog()
    study = hpt.create_study(
        FunctionBackend(**NOISY),
        strategy=strategy,
        seed=0,
        tracking=False,
        workers=workers,
        strategy_options=options,
        observers=[log],
    )
    study.optimize(trials)
    return study, log


@pytest.mark.parametrize(
    ("low", "high", "eta", "expected"),
    [(1, 27, 3, [1, 3, 9, 27]), (1, 50, 3, [2, 6, 17, 50]), (1, 8, 2, [1, 2, 4, 8]), (0.5, 2, 2, [0.5, 1, 2])],
)
def test_rung_budgets(low, high, eta, expected):
    assert rung_budgets(low, high, eta) == expected


def test_bad_budgets_are_one_line():
    with pytest.raises(PluginError, match="need 0 < min_budget < max_budget"):
        rung_budgets(5, 5, 3)
    with pytest.raises(PluginError, match="eta must be at least 2"):
        rung_budgets(1, 9, 1)
    with pytest.raises(PluginError, match="sampler 'hyperband' is itself a scheduler"):
        run("hyperband", 3, sampler="hyperband")


def test_successive_halving_rungs_follow_eta_and_promote_the_best():
    study, _ = run("successive-halving", 27, min_budget=1, max_budget=9, eta=3)
    reached = Counter(len(t.budget_history) for t in study.trials)
    assert len(study.trials) == 27 and reached == {1: 18, 2: 6, 3: 3}
    # the promoted ones were the best third of their rung, on the value measured at that rung
    rung0 = sorted(study.trials, key=lambda t: t.intermediate[0][1]["value"])
    assert {t.number for t in rung0[:9]} == {t.number for t in study.trials if len(t.budget_history) >= 2}
    assert study.best_trial.budget == 9


def test_promotions_continue_from_the_checkpoint():
    study, log = run("successive-halving", 9, min_budget=1, max_budget=9, eta=3)
    top = [t for t in study.trials if t.budget_history == [1, 3, 9]]
    assert len(top) == 1
    steps = [step for step, _ in top[0].intermediate]
    assert steps == list(range(9))  # epochs 0..8 each once: the counter never restarted
    assert [b for n, b in log.starts if n == top[0].number] == [1, 3, 9]


def test_trial_budget_caps_new_configurations_and_promotions_go_on():
    study, _ = run("successive-halving", 6, min_budget=1, max_budget=9, eta=3)
    assert len(study.trials) == 6
    assert Counter(len(t.budget_history) for t in study.trials) == {1: 4, 2: 1, 3: 1}


def test_hyperband_brackets():
    study, log = run("hyperband", 100, min_budget=1, max_budget=9, eta=3)
    first_budgets = Counter(t.budget_history[0] for t in study.trials)
    assert first_budgets == {1: 9, 3: 5, 9: 3}  # n = ceil((s_max+1)/(s+1) * eta^s) for s = 2, 1, 0
    assert len(study.trials) == 17
    assert all(t.budget == 9 for t in study.trials if t.budget_history[0] == 9)


def test_asha_promotes_without_waiting_for_a_rung():
    study, log = run("asha", 12, min_budget=1, max_budget=9, eta=3)
    # the third result at budget 1 already earns a promotion: the fourth evaluation is one
    assert log.starts[:4] == [(0, 1), (1, 1), (2, 1), (log.starts[3][0], 3)]
    assert log.starts[3][0] in (0, 1, 2)
    assert len(study.trials) == 12 and max(t.budget for t in study.trials) == 9


def test_asha_with_parallel_workers_finishes_every_trial():
    study, _ = run("asha", 12, workers=2, min_budget=1, max_budget=9, eta=3)
    assert study.counts()["complete"] == 12
    assert all(t.budget_history == sorted(t.budget_history) for t in study.trials)


class Recording(Strategy):
    """A sampler that hands out numbered points and remembers what it was told."""

    name = "recording"

    def __init__(self, space, **kwargs):
        super().__init__(space, **kwargs)
        self.proposed, self.told = [], []

    def ask(self, n=1):
        out = [Suggestion(self.space.sample(self.rng)) for _ in range(n)]
        self.proposed += [s.params for s in out]
        return out

    def tell(self, trial):
        self.told.append((trial.params, trial.budget))


def test_schedulers_pass_the_samplers_proposals_through():
    space = FunctionBackend("branin").default_space()
    for name in ("successive-halving", "hyperband", "asha"):
        sampler = Recording(space, seed=1)
        study, _ = run(name, 9, min_budget=1, max_budget=9, eta=3, sampler=sampler)
        assert [t.params for t in study.trials] == sampler.proposed[: len(study.trials)]
        # told once per configuration, at the budget it was first measured at
        assert sorted(map(repr, (p for p, _ in sampler.told))) == sorted(repr(t.params) for t in study.trials)
        assert [b for _, b in sampler.told] == [
            t.budget_history[0]
            for t in sorted(study.trials, key=lambda t: [p for p, _ in sampler.told].index(t.params))
        ]


def test_hyperband_with_a_model_based_sampler():
    study, _ = run(
        "hyperband", 17, min_budget=1, max_budget=9, eta=3, sampler="grid", sampler_options={"resolution": 5}
    )
    assert study.counts()["complete"] == 17
    assert len({repr(sorted(t.params.items())) for t in study.trials}) == 17  # the grid never repeats a point


def curve(params, ctx):
    """A learning curve whose level is x: trials with large x are worse at every step."""
    for step in range(6):
        ctx.report(step, params["x"] + 1.0 / (step + 1))
        if ctx.should_stop():
            raise hpt.TrialPruned
    return params["x"]


def test_median_pruning_stops_the_trials_below_the_median(store):
    study = hpt.create_study(
        curve,
        {"x": hpt.Float(0, 1)},
        seed=0,
        tracking=store,
        prune="median",
        prune_options={"warmup_steps": 2, "min_trials": 3},
    )
    for x in (0.1, 0.2, 0.3, 0.9, 0.05, 0.8):
        study.enqueue({"x": x})
    study.optimize(6)
    states = {t.params["x"]: t.state for t in study.trials}
    assert states == {
        0.1: TrialState.COMPLETE,
        0.2: TrialState.COMPLETE,
        0.3: TrialState.COMPLETE,
        0.9: TrialState.PRUNED,
        0.05: TrialState.COMPLETE,
        0.8: TrialState.PRUNED,
    }
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert all(t.last_step == 2 for t in pruned)  # stopped at the first step after warm-up
    runs = {r.data.tags["hpt.trial"]: r for r in child_runs(store, study.tracker.parent_run_id)}
    assert runs[str(pruned[0].number)].data.tags["hpt.stopped_at"] == "2"
    assert runs[str(pruned[0].number)].data.tags["hpt.state"] == "pruned"


def test_half_finished_successive_halving_resumes_its_rungs(store):
    calls = []
    study = hpt.create_study(
        FunctionBackend(**NOISY),
        strategy="successive-halving",
        seed=0,
        tracking=store,
        strategy_options={"min_budget": 1, "max_budget": 9, "eta": 3},
        trials=27,
    )
    evaluate = study.backend.evaluate

    def stop_after_30(params, budget, ctx):
        calls.append(ctx.number)
        if len(calls) == 31:  # all 27 at budget 1, then 3 promotions to budget 3 finished
            raise KeyboardInterrupt
        return evaluate(params, budget, ctx)

    study.backend.evaluate = stop_after_30
    with pytest.raises(KeyboardInterrupt):
        study.optimize(27)
    run_id = study.tracker.parent_run_id
    resumed, remaining = hpt.resume_study(run_id, store)
    assert remaining == 0
    resumed.optimize(remaining)
    reached = Counter(len(t.budget_history) for t in resumed.trials)
    assert len(resumed.trials) == 27 and reached == {1: 18, 2: 6, 3: 3}
    runs = child_runs(store, run_id)
    assert len(runs) == 27  # promotions after the resume stayed in their trials' runs
    top = next(r for r in runs if r.data.tags.get("hpt.budget_history") == "1,3,9")
    history = MlflowClient(store).get_metric_history(top.info.run_id, "value")
    assert sorted(m.step for m in history) == list(range(9))


def test_hyperband_repeats_its_brackets_when_asked_to():
    study, _ = run("hyperband", 40, min_budget=1, max_budget=9, eta=3, iterations=None)
    assert len(study.trials) == 40  # 17 configurations per iteration: the third iteration was under way
    first_budgets = Counter(t.budget_history[0] for t in study.trials[:34])
    assert first_budgets == {1: 18, 3: 10, 9: 6}
    twice, _ = run("hyperband", 100, min_budget=1, max_budget=9, eta=3, iterations=2)
    assert len(twice.trials) == 34


def test_resumed_hyperband_routes_trials_to_their_iterations(store):
    first = hpt.create_study(
        FunctionBackend(**NOISY),
        strategy="hyperband",
        seed=0,
        tracking=store,
        trials=30,
        strategy_options={"min_budget": 1, "max_budget": 9, "eta": 3, "iterations": 2},
    )
    first.optimize(30)
    resumed, remaining = hpt.resume_study(first.tracker.parent_run_id, store, trials=34)
    assert remaining == 4
    resumed.optimize(remaining)
    assert len(resumed.trials) == 34
    assert Counter(t.budget_history[0] for t in resumed.trials) == {1: 18, 3: 10, 9: 6}
    assert Counter(len(t.budget_history) for t in resumed.trials) == Counter(
        len(t.budget_history)
        for t in hpt.optimize(
            FunctionBackend(**NOISY),
            strategy="hyperband",
            seed=0,
            trials=34,
            strategy_options={"min_budget": 1, "max_budget": 9, "eta": 3, "iterations": 2},
        ).trials
    )
