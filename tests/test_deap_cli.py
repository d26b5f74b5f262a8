"""The DEAP strategies through `hpt run` against a temporary SQLite MLflow store, and a resumed GA study."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import invoke_json
from hpt.cli import cli

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters


@pytest.mark.parametrize("strategy", ["deap", "cmaes"])
def test_single_objective_strategies_run_from_the_cli(tmp_path, strategy):
    uri = f"sqlite:///{tmp_path}/m.db"
    summary = invoke_json(
        "run",
        "--strategy",
        strategy,
        "--backend",
        "function",
        "--function",
        "branin",
        "--trials",
        "12",
        "-O",
        "population=6",
        "--tracking-uri",
        uri,
    )
    assert summary["trials"]["complete"] == 12 and summary["best_value"] < 60


def test_nsga2_runs_two_objectives_and_best_prints_the_front(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    summary = invoke_json(
        "run",
        "--strategy",
        "nsga2",
        "--backend",
        "function",
        "--function",
        "zdt1",
        "--trials",
        "16",
        "-O",
        "population=8",
        "--tracking-uri",
        uri,
    )
    assert summary["trials"]["complete"] == 16 and summary["pareto_front"]
    best = invoke_json("best", summary["parent_run_id"], "--tracking-uri", uri)
    assert sorted(p["trial"] for p in best["pareto_front"]) == sorted(p["trial"] for p in summary["pareto_front"])


def test_a_resumed_ga_study_continues_to_the_requested_trials(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    first = invoke_json(
        "run",
        "--strategy",
        "deap",
        "--backend",
        "function",
        "--function",
        "branin",
        "--trials",
        "10",
        "-O",
        "population=4",
        "--tracking-uri",
        uri,
    )
    resumed = invoke_json("run", "--resume", first["parent_run_id"], "--trials", "18", "--tracking-uri", uri)
    assert resumed["trials"]["complete"] == 18 and resumed["best_value"] <= first["best_value"]


def test_a_bad_option_value_is_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--strategy",
            "deap",
            "--backend",
            "function",
            "-O",
            "population=2",
            "--tracking-uri",
            f"sqlite:///{tmp_path}/m.db",
            "--quiet",
        ],
    )
    assert result.exit_code == 1
    assert "strategy 'deap': population must be an integer >= 4, got 2" in result.output
