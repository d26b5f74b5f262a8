"""MLflow layout and resume, against a real SQLite store."""

from __future__ import annotations

import json

import hpt
import pytest
from conftest import child_runs
from hpt import Float, Int, TrialState
from hpt.tracking import load_study
from hpt_basic.function_backend import FunctionBackend
from mlflow.tracking import MlflowClient


def curve(params, ctx):
    for epoch in range(3):
        ctx.report(epoch, {"valid_loss": params["x"] ** 2 + 1 / (epoch + 1)})
    if params["n"] == 0:
        raise RuntimeError("boom")
    return params["x"] ** 2


def test_parent_and_child_runs_follow_the_layout(store):
    study = hpt.create_study(
        curve, {"x": Float(-1, 1), "n": Int(0, 3)}, strategy="random", seed=0, tracking=store, experiment="exp"
    )
    study.optimize(12)
    tracker = study.tracker
    client = MlflowClient(store)
    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("random-curve-")
    assert parent.data.tags["hpt.strategy"] == "random" and parent.data.tags["hpt.seed"] == "0"
    assert client.get_experiment(parent.info.experiment_id).name == "exp"
    assert parent.data.tags["hpt.best_trial"] == str(study.best_trial.number)
    best_curve = client.get_metric_history(parent.info.run_id, "best_objective")
    assert [m.step for m in best_curve] == list(range(1, 13))  # stepped by finished evaluations
    assert [m.value for m in best_curve] == sorted((m.value for m in best_curve), reverse=True)
    assert best_curve[-1].value == pytest.approx(study.best_value)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.json", "space.json", "best_params.json", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/history.png", "plots/parallel_coordinates.png", "plots/learning_curves.png"} <= plots
    assert "checkpoint_root" not in parent.data.params and parent.data.params["strategy"] == "random"

    children = child_runs(store, parent.info.run_id)
    assert sorted(r.info.run_name for r in children) == [f"trial-{i:04d}" for i in range(12)]
    for run in children:
        trial = study.trials[int(run.data.tags["hpt.trial"])]
        assert set(run.data.params) == set(trial.params) == {"x", "n"}
        assert run.data.tags["hpt.state"] == trial.state.value
        history = client.get_metric_history(run.info.run_id, "valid_loss")
        assert [m.step for m in history] == [0, 1, 2]
        if trial.state is TrialState.COMPLETE:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["objective"] == pytest.approx(trial.value)
        else:
            assert run.info.status == "FAILED" and run.data.tags["hpt.error"].startswith("RuntimeError: boom")
            assert "objective" not in run.data.metrics
    best_child = [r for r in children if r.data.tags.get("hpt.best") == "true"]
    assert [int(r.data.tags["hpt.trial"]) for r in best_child] == [study.best_trial.number]


def test_resume_from_mlflow_alone(store):
    first = hpt.create_study(
        FunctionBackend("branin"),
        strategy="grid",
        seed=0,
        tracking=store,
        trials=16,
        strategy_options={"resolution": 4},
    )
    first.optimize(10)
    run_id = first.tracker.parent_run_id
    study, remaining = hpt.resume_study(run_id, store)
    assert remaining == 6
    assert [t.params for t in study.trials] == [t.params for t in first.trials]
    assert [t.value for t in study.trials] == pytest.approx([t.value for t in first.trials])
    study.optimize(remaining)
    assert len(study.trials) == 16
    # the resumed grid continued where it stopped: every grid point exactly once
    assert len({repr(sorted(t.params.items())) for t in study.trials}) == 16
    children = child_runs(store, run_id)
    assert len(children) == 16
    parent = MlflowClient(store).get_run(run_id)
    assert parent.info.status == "FINISHED"
    assert json.loads(parent.data.tags["hpt.counts"])["complete"] == 16


def test_resume_requeues_trials_that_were_running(store):
    calls = []

    study = hpt.create_study(FunctionBackend("branin"), seed=0, tracking=store, trials=8)
    original_evaluate = study.backend.evaluate

    def dies_at_trial_five(params, budget, ctx):
        calls.append(ctx.number)
        if ctx.number == 5:
            raise KeyboardInterrupt
        return original_evaluate(params, budget, ctx)

    study.backend.evaluate = dies_at_trial_five
    with pytest.raises(KeyboardInterrupt):
        study.optimize(8)
    run_id = study.tracker.parent_run_id
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "KILLED"
    record = load_study(run_id, store)
    assert [t.number for t in record.interrupted] == [5]

    resumed, remaining = hpt.resume_study(run_id, store)
    assert remaining == 3
    resumed.optimize(remaining)
    done = [t for t in resumed.trials if t.state is TrialState.COMPLETE]
    assert len(done) == 8
    assert resumed.trials[6].params == record.interrupted[0].params  # re-queued first
    statuses = {r.data.tags["hpt.trial"]: r.info.status for r in child_runs(store, run_id)}
    assert statuses["5"] == "KILLED" and len(statuses) == 9


def test_tracking_uri_from_environment(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    study = hpt.create_study(FunctionBackend("branin"), seed=0, tracking=True)
    study.optimize(2)
    assert study.tracker.tracking_uri == uri
    assert len(child_runs(uri, study.tracker.parent_run_id)) == 2


def test_default_store_is_mlflow_db_in_the_working_directory(tmp_path):
    study = hpt.create_study(FunctionBackend("branin"), seed=0, tracking=True)
    study.optimize(1)
    assert study.tracker.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert len(child_runs(f"sqlite:///{tmp_path}/mlflow.db", study.tracker.parent_run_id)) == 1


def test_resume_survives_a_run_killed_before_its_params_were_logged(store):
    study = hpt.create_study(FunctionBackend("branin"), seed=0, tracking=store, trials=6)
    study.optimize(3)
    run_id = study.tracker.parent_run_id
    client = MlflowClient(store)
    parent = client.get_run(run_id)
    tags = {"mlflow.parentRunId": run_id, "hpt.trial": "3", "hpt.state": "running"}
    orphan = client.create_run(parent.info.experiment_id, tags=tags, run_name="trial-0003")  # no params yet
    client.set_terminated(run_id, "KILLED")

    resumed, remaining = hpt.resume_study(run_id, store)
    assert remaining == 3
    resumed.optimize(remaining)
    assert resumed.counts()["complete"] == 6
    closed = client.get_run(orphan.info.run_id)
    assert closed.info.status == "FAILED" and closed.data.tags["hpt.state"] == "failed"
    assert closed.data.tags["hpt.error"] == "interrupted before its parameters were recorded"


def test_hpt_experiments_open_on_the_runs_table(store):
    study = hpt.create_study(lambda p: p["x"], {"x": Float(0, 1)}, tracking=store, seed=0, experiment="kinds")
    study.optimize(2)
    experiment = MlflowClient(store).get_experiment_by_name("kinds")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    from hpt_reports.commands import runs_page

    assert runs_page(store, "kinds") == f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert runs_page(store, "no-such-experiment") == ""
