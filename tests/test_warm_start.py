"""Warm start: a new study's strategy is told an earlier study's trials that fit its space, before it asks."""

from __future__ import annotations

import hpt
import hpt.tracking
import pytest
from conftest import child_runs, invoke_json
from hpt.errors import HptError
from hpt.store import newest_study_run_id
from hpt.warm_start import load_warm_start
from mlflow.tracking import MlflowClient


def earlier_study(store: str, trials: int = 8) -> str:
    out = invoke_json(
        "run", "--backend", "function", "--function", "branin", "--strategy", "random", "--trials", str(trials),
        "--tracking-uri", store, "--quiet",
    )  # fmt: skip
    return out["parent_run_id"]


class Recorder(hpt.Strategy):
    """Random proposals; remembers what it was told and whether that came before its first ask."""

    name = "recorder"

    def __init__(self, space: hpt.Space) -> None:
        super().__init__(space, seed=0)
        self.told: list[hpt.Trial] = []
        self.told_before_ask: int | None = None

    def ask(self, n: int = 1) -> list[hpt.Suggestion]:
        if self.told_before_ask is None:
            self.told_before_ask = len(self.told)
        return [hpt.Suggestion(self.space.sample(self.rng)) for _ in range(n)]

    def tell(self, trial: hpt.Trial) -> None:
        self.told.append(trial)


def test_the_strategy_learns_the_fitting_trials_without_new_trials_or_child_runs(store: str):
    source = earlier_study(store)
    space = hpt.Space({"x1": hpt.Float(-5, 2.5), "x2": hpt.Float(0, 15)})  # x1 narrowed from -5..10
    strategy = Recorder(space)
    study = hpt.create_study(
        "function", space, strategy=strategy, tracking=store, backend_options={"function": "branin"}
    )
    warm = load_warm_start(source, store, study.space, study.backend.name, study.directions)
    inside = [t for t in hpt.tracking.load_study(source, store).trials if t.params["x1"] <= 2.5]
    assert len(warm.trials) == len(inside) and warm.skipped == 8 - len(inside) and inside
    assert sorted(t.number for t in warm.trials) == list(range(-len(inside), 0))
    study.warm_start(warm)
    study.optimize(3)
    assert strategy.told_before_ask == len(inside)
    assert [t.number for t in study.trials] == [0, 1, 2] and study.counts()["complete"] == 3
    run_id = study.tracker.parent_run_id
    assert len(child_runs(store, run_id)) == 3
    tags = MlflowClient(store).get_run(run_id).data.tags
    assert tags["hpt.warm_start"] == source and tags["hpt.warm_start_trials"] == str(len(inside))
    assert tags["hpt.warm_start_skipped"] == str(warm.skipped)


def test_a_multi_fidelity_scheduler_hands_warm_trials_to_its_sampler(store: str):
    source = earlier_study(store, trials=5)
    study = hpt.create_study(
        "function", strategy="hyperband", seed=0, tracking=False, backend_options={"function": "branin"},
        strategy_options={"min_budget": 1, "max_budget": 9},
    )  # fmt: skip
    study.warm_start(load_warm_start(source, store, study.space, "function", study.directions))
    study.optimize(6)  # promotions refer to this study's own trials only
    assert all(t.number >= 0 for t in study.trials) and len({t.number for t in study.trials}) == len(study.trials)


def test_unknown_run_and_another_backend_are_one_line(store: str):
    source = earlier_study(store, trials=2)
    space = hpt.Space({"x": hpt.Float(0, 1)})
    with pytest.raises(HptError, match="cannot load study 'nope'") as info:
        load_warm_start("nope", store, space, "function", ("minimize",))
    assert "\n" not in str(info.value)
    with pytest.raises(HptError, match="that study tuned backend 'function'"):
        load_warm_start(source, store, space, "mlp", ("minimize",))
    with pytest.raises(HptError, match="optimised minimize, this study maximize"):
        load_warm_start(source, store, space, "function", ("maximize",))


def test_hpt_run_warm_start_from_the_command_line(store: str):
    from click.testing import CliRunner
    from hpt.cli import cli

    source = earlier_study(store, trials=6)
    args = ["run", "--backend", "function", "--function", "branin", "--strategy", "skopt", "--trials", "3"]
    result = CliRunner().invoke(cli, [*args, "--set", "x1=-5..2.5", "--warm-start", source, "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    inside = [t for t in hpt.tracking.load_study(source, store).trials if t.params["x1"] <= 2.5]
    told = f"{len(inside)} trials told, {6 - len(inside)} outside the space skipped"
    assert f"warm start from {source}: {told}" in result.output
    newest = newest_study_run_id(store)
    assert MlflowClient(store).get_run(newest).data.tags["hpt.warm_start"] == source
    assert len(child_runs(store, newest)) == 3
    unknown = CliRunner().invoke(cli, [*args, "--warm-start", "nope", "--tracking-uri", store])
    assert unknown.exit_code == 1 and unknown.output.count("\n") == 1 and "cannot load study 'nope'" in unknown.output
