"""The `auto` strategy: valid points for every parameter kind, seeds, pending asks, failures, resume
without repeats, the multi-objective hand-over, convergence on easy functions and option errors."""

from __future__ import annotations

import numpy as np
import pytest
from hpt.errors import PluginError
from hpt.plugins import registry
from hpt.space import Categorical, Fixed, Float, Int, Space
from hpt.trial import Trial, TrialState
from hpt_auto.strategy import AutoStrategy
from hpt_basic.test_functions import FUNCTIONS

MIXED = Space(
    {
        "lr": Float(1e-4, 1e-1, log=True),
        "dropout": Float(0.0, 0.5),
        "units": Int(8, 512, log=True),
        "layers": Int(1, 4),
        "batch": Int(16, 128, step=16),
        "optimizer": Categorical(["sgd", "adam", "rmsprop"]),
        "momentum": Float(0.0, 0.99, when={"optimizer": ["sgd"]}),
        "epochs": Fixed(5),
    }
)


def mixed_loss(params: dict) -> float:
    return (
        (np.log10(params["lr"]) + 2.5) ** 2
        + (np.log2(params["units"]) - 6) ** 2 / 10
        + (params["batch"] - 64) ** 2 / 1e3
        + (params["layers"] - 2) ** 2 / 4
        + params["dropout"]
        + (0.0 if params["optimizer"] == "adam" else 0.5)
        + (params.get("momentum", 0.9) - 0.9) ** 2
    )


def finished(number: int, params: dict, value: float | None) -> Trial:
    state = TrialState.FAILED if value is None else TrialState.COMPLETE
    return Trial(number, params, state=state, values=None if value is None else [value])


def drive(strategy, objective, trials: int, start: int = 0) -> list[Trial]:
    done = []
    for number in range(start, start + trials):
        params = strategy.ask(1)[0].params
        trial = finished(number, params, objective(params))
        strategy.tell(trial)
        done.append(trial)
    return done


def key(params: dict) -> str:
    return repr(sorted(params.items()))


def test_proposals_are_valid_for_every_parameter_kind_and_condition():
    trials = drive(
        AutoStrategy(MIXED, seed=0, model="gp", n_initial_points=4, n_candidates=100, n_refine=2), mixed_loss, 10
    )
    for trial in trials:
        assert MIXED.validate(trial.params) == trial.params
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
        assert trial.params["batch"] % 16 == 0 and trial.params["epochs"] == 5
    assert len({key(t.params) for t in trials}) == len(trials)


def test_same_seed_same_proposals_other_seed_other_proposals():
    def proposals(seed: int) -> list[dict]:
        strategy = AutoStrategy(MIXED, seed=seed, model="gp", n_initial_points=3, n_candidates=200)
        return [t.params for t in drive(strategy, mixed_loss, 5)]

    assert proposals(3) == proposals(3)
    assert proposals(3) != proposals(4)


@pytest.mark.parametrize("told", [0, 6])
def test_asks_before_tells_get_distinct_valid_points(told):
    strategy = AutoStrategy(MIXED, seed=1, model="gp", n_initial_points=4, n_candidates=200)
    drive(strategy, mixed_loss, told)
    asked = strategy.ask(2) + strategy.ask(2)
    assert len({key(s.params) for s in asked}) == 4
    assert all(MIXED.validate(s.params) == s.params for s in asked)


def test_a_resumed_strategy_proposes_what_the_uninterrupted_one_would_and_never_a_finished_point():
    fn = FUNCTIONS["branin"]
    space = fn.space(2)
    first = AutoStrategy(space, seed=5, model="gp", n_initial_points=4, n_candidates=300)
    trials = drive(first, fn.evaluate, 9)
    resumed = AutoStrategy(space, seed=5, model="gp", n_initial_points=4, n_candidates=300)
    for trial in trials:
        resumed.tell(trial)
    seen = {key(t.params) for t in trials}
    after = [s.params for s in resumed.ask(2)]
    assert after == [s.params for s in first.ask(2)]
    assert not seen & {key(p) for p in after}


def test_a_small_discrete_space_is_searched_without_repeats():
    space = Space({"a": Categorical(["x", "y", "z"]), "b": Int(1, 4)})
    strategy = AutoStrategy(space, seed=0, model="gp", n_initial_points=3, n_candidates=100)
    trials = drive(strategy, lambda p: p["b"] + (p["a"] == "y"), 12)
    assert len({key(t.params) for t in trials}) == 12


def test_failed_trials_are_tolerated():
    fn = FUNCTIONS["branin"]
    strategy = AutoStrategy(fn.space(2), seed=0, model="gp", n_initial_points=3, n_candidates=200)
    trials = drive(strategy, lambda p: None if p["x1"] > 5 else fn.evaluate(p), 8)
    assert all(fn.space(2).validate(t.params) == t.params for t in trials)


def test_several_objectives_go_to_nsga2():
    strategy = registry().create("strategy", "auto", FUNCTIONS["zdt1"].space(3), directions=("minimize",) * 2, seed=0)
    assert strategy.method == "nsga2"
    assert len(strategy.ask(3)) == 3


@pytest.mark.parametrize(
    ("function", "trials", "bound", "options"),
    [("branin", 25, 0.5, {}), ("branin", 25, 0.5, {"model": "gp"}), ("mixed", 30, 0.6, {"model": "gp"})],
)
def test_converges_on_easy_functions_and_beats_random(function, trials, bound, options):
    fn = FUNCTIONS[function]
    space = fn.space(fn.default_dim)

    def regret(name: str, seed: int, **options) -> float:
        strategy = registry().create("strategy", name, space, seed=seed, **options)
        return min(t.value for t in drive(strategy, fn.evaluate, trials)) - fn.optimum

    auto = [regret("auto", seed, **options) for seed in range(2)]
    random = [regret("random", seed) for seed in range(2)]
    assert np.median(auto) < bound
    assert np.median(auto) < 0.5 * np.median(random)


def test_scikit_optimize_leads_then_hpts_own_gp_takes_over_with_every_trial():
    fn = FUNCTIONS["branin"]
    strategy = AutoStrategy(fn.space(2), seed=0, model="auto", switch_after=6, n_initial_points=3, n_candidates=200)
    assert strategy.method == "skopt"
    trials = drive(strategy, fn.evaluate, 6)
    assert strategy.method == "gp" and len(strategy.y) == 6
    later = drive(strategy, fn.evaluate, 3, start=6)
    assert strategy.skopt.told == 6  # no longer asked, no longer told
    assert len({key(t.params) for t in trials + later}) == 9


def test_auto_is_the_default_strategy():
    assert registry().get("strategy", "auto").default


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_initial_points": 0}, "n_initial_points must be an integer >= 1, got 0"),
        ({"warp": "yes"}, "warp must be true or false, got 'yes'"),
        ({"model": "tpe"}, "model='tpe' is not supported; use one of auto, skopt, gp"),
    ],
)
def test_bad_options_give_one_clear_line(options, message):
    with pytest.raises(PluginError) as info:
        registry().create("strategy", "auto", MIXED, **options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_space_with_nothing_to_tune_is_refused():
    with pytest.raises(PluginError, match="nothing to tune"):
        AutoStrategy(Space({"epochs": Fixed(3)}))


@pytest.mark.parametrize(
    ("directions", "model"), [(("minimize",), "gp"), (("minimize",), "auto"), (("minimize", "maximize"), "auto")]
)
def test_auto_keeps_the_strategy_contract(directions, model):
    from hpt.testing import check_strategy

    check_strategy(
        lambda space, **kw: AutoStrategy(space, model=model, n_initial_points=4, n_candidates=100, n_refine=2, **kw),
        directions=directions,
        exact_resume=model == "gp",
    )


@pytest.mark.parametrize(
    ("dim", "budget", "size"), [(2, None, 5), (5, None, 8), (12, None, 10), (6, 20, 5), (6, 10, 3), (2, 100, 5)]
)
def test_the_initial_design_scales_with_dimension_and_budget_and_is_announced(dim, budget, size, caplog):
    space = Space({f"x{i}": Float(0, 1) for i in range(dim)})
    strategy = AutoStrategy(space, seed=0)
    strategy.set_budget(budget)
    with caplog.at_level("INFO", logger="hpt_auto.strategy"):
        strategy.ask(1)
    assert strategy.n_initial_points == size
    assert f"initial design of {size} Sobol points ({dim} parameters" in caplog.text
    assert AutoStrategy(space, seed=0, n_initial_points=7).n_initial_points == 7


def test_a_stalled_search_turns_local_around_the_incumbent():
    space = Space({"x": Float(0, 1), "y": Float(0, 1)})
    strategy = AutoStrategy(space, seed=0, n_initial_points=5, n_candidates=200, local_after=3)
    drive(strategy, lambda p: 1.0 if p["x"] > 0.2 or p["y"] > 0.2 else 0.0, 5)  # a step: no slope to follow
    best = strategy.x[int(np.argmin(strategy.y))]
    assert strategy._local_box(np.vstack(strategy.x)) is None
    drive(strategy, lambda p: 2.0, 3, start=5)  # three model-phase trials without improvement
    assert strategy.stalled() == 3
    low, high = strategy._local_box(np.vstack(strategy.x))
    assert np.allclose(high - low, 0.4) and np.all((best >= low) & (best <= high))
    params = strategy.ask(1)[0].params
    assert low[0] <= params["x"] <= high[0] and low[1] <= params["y"] <= high[1]
