"""The DEAP strategies (genetic algorithm, CMA-ES, NSGA-II): valid and reproducible proposals,
pending asks, failed trials, resume by replay, convergence against random search and option errors."""

from __future__ import annotations

import hpt
import numpy as np
import pytest
from hpt.errors import PluginError
from hpt.plugins import registry
from hpt.space import Categorical, Fixed, Float, Int, Space
from hpt.trial import Trial, TrialState, dominates
from hpt_basic.function_backend import FunctionBackend
from hpt_basic.test_functions import FUNCTIONS

SINGLE = ("deap", "cmaes")
MIXED = Space(
    {
        "lr": Float(1e-4, 1e-1, log=True),
        "units": Int(8, 512, log=True),
        "batch": Int(16, 128, step=16),
        "optimizer": Categorical(["sgd", "adam", "rmsprop"]),
        "momentum": Float(0.0, 0.99, when={"optimizer": ["sgd"]}),
        "epochs": Fixed(5),
    }
)


def make(name: str, space: Space = MIXED, **options):
    directions = ("minimize", "minimize") if name == "nsga2" else ("minimize",)
    return registry().create("strategy", name, space, directions=directions, seed=options.pop("seed", 0), **options)


def loss(params: dict) -> float:
    return (np.log10(params["lr"]) + 2.5) ** 2 + (params["optimizer"] != "adam") + params["batch"] / 128


def evaluate(name: str, params: dict) -> list[float]:
    value = loss(params)
    return [value, np.log2(params["units"])] if name == "nsga2" else [value]


def drive(strategy, name: str, trials: int, start: int = 0) -> list[Trial]:
    done = []
    for number in range(start, start + trials):
        params = MIXED.validate(strategy.ask(1)[0].params)
        trial = Trial(number, params, state=TrialState.COMPLETE, values=evaluate(name, params))
        strategy.tell(trial)
        done.append(trial)
    return done


@pytest.mark.parametrize("name", ["deap", "cmaes", "nsga2"])
def test_proposals_are_valid_and_the_generations_advance(name):
    strategy = make(name, population=8)
    trials = drive(strategy, name, 40)
    for trial in trials:
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
        assert trial.params["batch"] % 16 == 0 and trial.params["epochs"] == 5
    assert strategy.generation >= 4


@pytest.mark.parametrize("name", ["deap", "cmaes", "nsga2"])
def test_same_seed_same_proposals(name):
    def proposals(seed: int) -> list[dict]:
        return [t.params for t in drive(make(name, population=8, seed=seed), name, 30)]

    assert proposals(5) == proposals(5)
    assert proposals(5) != proposals(6)


@pytest.mark.parametrize("name", ["deap", "cmaes", "nsga2"])
def test_pending_asks_get_distinct_members_and_a_told_generation_breeds(name):
    strategy = make(name, population=8)
    asked = strategy.ask(4) + strategy.ask(4)
    assert len({repr(sorted(s.params.items())) for s in asked}) == 8
    assert strategy.ask(2) == []  # the whole generation is out: wait for it
    for number, suggestion in enumerate(reversed(asked)):  # told out of order, as parallel workers finish
        params = MIXED.validate(suggestion.params)
        strategy.tell(Trial(number, params, state=TrialState.COMPLETE, values=evaluate(name, params)))
    assert strategy.generation == 1 and len(strategy.ask(8)) > 0


@pytest.mark.parametrize("name", ["deap", "cmaes", "nsga2"])
def test_a_fresh_instance_told_the_trials_continues_where_the_first_stopped(name):
    original = make(name, population=8)
    trials = drive(original, name, 29)  # stops in the middle of a generation
    resumed = make(name, population=8)
    for trial in trials:
        resumed.tell(trial)
    assert resumed.generation == original.generation > 0
    assert [s.params for s in resumed.ask(3)] == [s.params for s in original.ask(3)]


def test_failed_trials_get_the_worst_fitness():
    space = FUNCTIONS["branin"].space(2)
    ga = make("deap", space, population=4, elite=2)
    members = [s.params for s in ga.ask(4)]
    for number, (params, value) in enumerate(zip(members, [5.0, None, 3.0, None], strict=True)):
        state = TrialState.FAILED if value is None else TrialState.COMPLETE
        ga.tell(Trial(number, params, state=state, values=None if value is None else [value]))
    assert ga.generation == 1
    assert [e.fitness.values for e in ga.elites] == [(3.0,), (5.0,)]


def median_regret(strategy: str, function: str, trials: int, seeds: range) -> float:
    backend = FunctionBackend(function=function)
    return float(np.median([hpt.optimize(backend, trials=trials, seed=s, strategy=strategy).best_value for s in seeds]))


@pytest.mark.parametrize("name", SINGLE)
def test_converges_better_than_random(name):
    seeds = range(5)
    optimum = FUNCTIONS["rosenbrock"].optimum
    found = median_regret(name, "rosenbrock", 150, seeds) - optimum
    baseline = median_regret("random", "rosenbrock", 150, seeds) - optimum
    assert found < 0.5 * baseline


def hypervolume(points: list[list[float]], reference: tuple[float, float]) -> float:
    """Area dominated by a two-objective front (both minimised) up to `reference`."""
    area, ceiling = 0.0, reference[1]
    for f1, f2 in sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1]):
        if f2 < ceiling:
            area += (reference[0] - f1) * (ceiling - f2)
            ceiling = f2
    return area


def test_nsga2_front_on_zdt1_is_non_dominated_and_beats_random():
    backend = FunctionBackend(function="zdt1")
    volumes = {"nsga2": [], "random": []}
    for strategy in volumes:
        for seed in range(5):
            study = hpt.optimize(backend, trials=200, seed=seed, strategy=strategy)
            front = [t.values for t in study.pareto_front()]
            assert not any(dominates(a, b, study.directions) for a in front for b in front)
            volumes[strategy].append(hypervolume(front, (1.1, 3.0)))
    assert np.median(volumes["nsga2"]) > 1.3 * np.median(volumes["random"])


def test_single_objective_strategies_refuse_two_objectives():
    with pytest.raises(hpt.HptError, match="optimises one objective"):
        hpt.create_study(FunctionBackend(function="zdt1"), strategy="deap", tracking=False)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("deap", {"population": 3}, "population must be an integer >= 4, got 3"),
        ("deap", {"population": 10, "elite": 10}, "elite must be an integer in 0..9, got 10"),
        ("deap", {"cxpb": 1.5}, "cxpb must be in [0, 1], got 1.5"),
        ("cmaes", {"sigma": 0}, "sigma must be a positive number, got 0"),
        ("nsga2", {"population": 10}, "population must be a multiple of 4, got 10"),
        ("cmaes", {"popsize": 8}, "strategy 'cmaes' does not take option 'popsize'"),
    ],
)
def test_bad_options_give_one_clear_line(name, options, message):
    with pytest.raises(PluginError) as info:
        make(name, **options)
    assert message in str(info.value) and "\n" not in str(info.value)
