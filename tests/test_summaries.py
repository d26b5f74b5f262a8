"""One study, one best value: the summary, `hpt best`, `hpt studies` and the parent run's `best_objective`
agree for every strategy, multi-fidelity ones included, and the counts printed add up."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("strategy", ["hyperband", "asha", "successive-halving", "random"])
def test_every_place_shows_the_same_best_value(tmp_path, strategy):
    args = ("run", "--strategy", strategy, "--backend", "function", "--function", "branin", "--trials", "20")
    budget = ("--min-budget", "1", "--max-budget", "9") if strategy != "random" else ()
    run = run_cli(*args, *budget, "-B", "noise=0.5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = re.search(r"^best value (\S+) \(trial (\d+)\)$", run.stdout, re.M)
    value, trial = float(summary.group(1)), int(summary.group(2))
    run_id = re.search(r"^MLflow run (\w+) in ", run.stdout, re.M).group(1)

    best = json.loads(run_cli("best", run_id, "--json", cwd=tmp_path).stdout)
    assert best["trial"] == trial and best["value"] == pytest.approx(value, rel=1e-5)
    studies = json.loads(run_cli("studies", "--json", cwd=tmp_path).stdout)
    listed = next(s for s in studies["studies"] if s["run_id"] == run_id)
    assert listed["best"] == pytest.approx(value, rel=1e-5)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_run(run_id).data.metrics["best_objective"] == pytest.approx(value, rel=1e-5)
    curve = client.get_metric_history(run_id, "best_objective")
    steps = [m.step for m in curve]
    assert steps == sorted(set(steps))  # one point per finished evaluation, never an earlier step again

    counted = [int(m.group(1)) for m in re.finditer(r"^trial \d+ \((\d+)/20\)", run.stderr, re.M)]
    assert counted and max(counted) <= 20 and counted == sorted(counted)  # configurations, not evaluations
