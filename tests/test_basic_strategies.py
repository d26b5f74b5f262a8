"""The built-in grid and random strategies."""

from __future__ import annotations

import hpt
import numpy as np
import pytest
from hpt import Categorical, Float, Int, PluginError, Space
from hpt.trial import Trial, TrialState
from hpt_basic.grid_search import GridSearch
from hpt_basic.random_search import RandomSearch

SPACE = Space({"x": Float(-1, 1), "n": Int(1, 3), "c": Categorical(["a", "b"])})


def test_random_is_reproducible_and_seed_dependent():
    a = [s.params for s in RandomSearch(SPACE, seed=1).ask(5)]
    b = [s.params for s in RandomSearch(SPACE, seed=1).ask(5)]
    c = [s.params for s in RandomSearch(SPACE, seed=2).ask(5)]
    assert a == b and a != c
    assert all(SPACE.validate(p) == p for p in a)


def test_grid_visits_every_point_once_then_is_exhausted():
    grid = GridSearch(SPACE, resolution=3)
    asked = []
    while batch := grid.ask(4):  # parallel-style asks before any tell
        asked += [s.params for s in batch]
    assert len(asked) == grid.size == 3 * 3 * 2
    assert len({repr(sorted(p.items())) for p in asked}) == len(asked)


def test_grid_resume_skips_told_points():
    first = GridSearch(SPACE, resolution=3)
    done = [s.params for s in first.ask(7)]
    resumed = GridSearch(SPACE, resolution=3)
    for i, params in enumerate(done):
        resumed.tell(Trial(i, params, state=TrialState.COMPLETE, values=[0.0]))
    rest = [s.params for s in resumed.ask(100)]
    assert len(rest) == 18 - 7
    assert not {repr(sorted(p.items())) for p in rest} & {repr(sorted(p.items())) for p in done}


def test_grid_shuffle_is_a_seeded_permutation():
    ordered = [s.params for s in GridSearch(SPACE, resolution=2).ask(100)]
    shuffled = [s.params for s in GridSearch(SPACE, resolution=2, shuffle=True, seed=3).ask(100)]
    assert shuffled != ordered
    assert sorted(map(repr, shuffled)) == sorted(map(repr, ordered))


def test_random_search_finds_a_good_region():
    study = hpt.optimize(lambda p: (p["x"] - 0.3) ** 2, {"x": Float(-1, 1)}, strategy="random", trials=60, seed=0)
    assert abs(study.best_params["x"] - 0.3) < 0.05
    assert np.isclose(study.best_value, (study.best_params["x"] - 0.3) ** 2)


def test_grid_size_of_a_large_conditional_space_is_counted_without_walking_it():
    big = Space(
        {
            **{f"p{i}": Float(0, 1) for i in range(12)},
            "opt": Categorical(["sgd", "momentum", "adam"]),
            "m": Float(0.5, 0.9, when={"opt": ["momentum"]}),
        }
    )
    assert big.grid_size(5) == 5**12 * (2 + 5)  # sgd, adam, and momentum x 5 values of m
    strategy = GridSearch(big, resolution=5)
    assert strategy.size == 5**12 * 7 and len(strategy.ask(3)) == 3
    with pytest.raises(PluginError, match="too many to shuffle"):
        GridSearch(big, resolution=5, shuffle=True)
