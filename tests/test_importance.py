"""Hyperparameter importance: fANOVA on a random forest; a parameter without effect ranks last."""

from __future__ import annotations

import json
from pathlib import Path

import hpt
import pytest
from click.testing import CliRunner
from hpt_reports.importance import MIN_TRIALS, importance
from mlflow.tracking import MlflowClient

SPACE = {"x": hpt.Float(-5, 5), "y": hpt.Float(-5, 5), "unused": hpt.Float(0, 1), "kind": hpt.Categorical(["a", "b"])}


def objective(p: dict) -> float:
    return (p["x"] - 1) ** 2 + 0.2 * (p["y"] + 2) ** 2 + (3.0 if p["kind"] == "b" else 0.0)


def test_a_parameter_without_effect_ranks_last():
    study = hpt.optimize(objective, SPACE, strategy="random", trials=40, seed=0)
    ranking = hpt.importance(study)
    assert list(ranking)[0] == "x" and list(ranking)[-1] == "unused"
    assert sum(ranking.values()) == pytest.approx(1.0) and ranking["unused"] < 0.05


def test_a_study_of_20_trials_logs_its_ranking_and_the_command_reads_the_store(store: str, tmp_path):
    study = hpt.optimize(objective, SPACE, trials=20, seed=1, tracking=store)
    run_id = study.tracker.parent_run_id
    client = MlflowClient(store)
    artifacts = {a.path for folder in (None, "plots") for a in client.list_artifacts(run_id, folder)}
    assert {"plots/importance.json", "plots/importance.png"} <= artifacts
    logged = client.download_artifacts(run_id, "plots/importance.json", str(tmp_path))
    result = CliRunner().invoke(importance, [run_id, "--tracking-uri", store, "--json", "--no-log"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["importance"] == pytest.approx(json.loads(Path(logged).read_text())["importance"])
    assert list(out["importance"])[-1] == "unused"


def test_too_few_trials_is_one_line_saying_how_many(store: str):
    study = hpt.optimize(objective, SPACE, trials=4, seed=0, tracking=store)
    result = CliRunner().invoke(importance, [study.tracker.parent_run_id, "--tracking-uri", store])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: importance needs at least {MIN_TRIALS} complete trials; this study has 4: run more trials "
        "(hpt run --resume RUN_ID --trials N)"
    )
