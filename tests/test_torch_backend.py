"""The mlp backend through hpt's real API, CLI and MLflow store; the plugin's registration; lr-find."""

import json
import pickle

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

import hpt  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import invoke_json  # noqa: E402
from hpt.cli import cli  # noqa: E402
from hpt.errors import HptError, PluginError  # noqa: E402
from hpt.plugins import registry  # noqa: E402
from hpt_torch.backend import MLPBackend, narrowed_range  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

registry().pm.hook.hpt_register_commands(cli=cli)  # what `hpt` does at start-up: adds lr-find


def child_runs(client, parent):
    exp = parent.info.experiment_id
    runs = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return sorted(runs, key=lambda r: int(r.data.tags["hpt.trial"]))


def test_plugin_registers_the_backend_with_its_dependencies():
    entry = registry().get("backend", "mlp")
    assert entry.load() is MLPBackend
    assert entry.requires == {"torch": "torch", "sklearn": "scikit-learn"} and entry.extra == "torch"
    with pytest.raises(PluginError, match="backend 'mlp' does not take option 'epochs_max'"):
        registry().create("backend", "mlp", dataset="iris", epochs_max=3)


def test_optimize_logs_epoch_curves_and_the_test_score(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    study = hpt.optimize(
        MLPBackend(dataset="iris", metric="accuracy"), trials=3, seed=0, tracking=uri, overrides={"max_epochs": "4"}
    )
    assert study.directions == ("maximize",) and study.counts()["complete"] == 3
    best = study.best_trial
    assert best.value == max(t.value for t in study.trials)
    assert best.value == max(m["valid_accuracy"] for _, m in best.intermediate)
    assert set(study.final_metrics) == {"test_loss", "test_accuracy", "test_f1"}

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("hpt").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["hpt.dataset"] == "iris" and parent.data.tags["hpt.task"] == "classification"
    assert parent.data.metrics["test_accuracy"] == pytest.approx(study.final_metrics["test_accuracy"])
    children = child_runs(client, parent)
    assert len(children) == 3
    history = client.get_metric_history(children[0].info.run_id, "valid_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert children[best.number].data.metrics["objective"] == pytest.approx(best.value)


def test_cli_run_with_kfold_logs_to_sqlite(tmp_path):
    uri = f"sqlite:///{tmp_path}/cli.db"
    args = [
        "run",
        "--strategy",
        "random",
        "--backend",
        "mlp",
        "--dataset",
        "digits",
        "--size",
        "300",
        "--folds",
        "2",
        "--trials",
        "2",
        "--set",
        "max_epochs=3",
        "--set",
        "batch_size=128",
        "--tracking-uri",
        uri,
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["trials"]["complete"] == 2 and "test_accuracy" in summary["final_metrics"]
    client = MlflowClient(uri)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.data.tags["hpt.metric"] == "valid_loss"
    assert parent.data.metrics["test_accuracy"] == pytest.approx(summary["final_metrics"]["test_accuracy"])
    for child in child_runs(client, parent):
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "train_loss")) == [1, 2, 3]
        assert child.data.params["max_epochs"] == "3" and child.data.metrics["epochs"] == 3


def test_nsga2_trades_validation_loss_against_network_size(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    args = ["run", "--strategy", "nsga2", "-O", "population=4", "--backend", "mlp", "--dataset", "iris"]
    args += ["--metric", "valid_loss,n_params", "--trials", "6", "--set", "max_epochs=2", "--tracking-uri", uri]
    summary = invoke_json(*args)
    assert summary["trials"]["complete"] == 6 and summary["pareto_front"]
    client = MlflowClient(uri)
    children = {int(c.data.tags["hpt.trial"]): c for c in child_runs(client, client.get_run(summary["parent_run_id"]))}
    for member in summary["pareto_front"]:
        logged = children[member["trial"]].data.metrics
        assert member["values"] == pytest.approx([logged["best_valid_loss"], logged["n_params"]])
    front = [tuple(m["values"]) for m in summary["pareto_front"]]
    assert not any(a != b and a[0] <= b[0] and a[1] <= b[1] for a in front for b in front)  # none dominated


def test_cli_reports_bad_backend_input_as_one_line(tmp_path):
    uri = f"sqlite:///{tmp_path}/bad.db"
    runner = CliRunner()
    for args, message in [
        (["--dataset", "iris", "--metric", "rmse"], "error: metric 'rmse' does not apply to classification"),
        (["--data", str(tmp_path / "missing.csv"), "--target", "y"], "does not exist"),
        (["--dataset", "iris", "--device", "tpu9"], "unknown device 'tpu9'"),
        (["--dataset", "iris", "--metric", "loss,valid_loss"], "names an objective twice"),
        (["--dataset", "iris", "--metric", "loss,n_params", "--strategy", "skopt"], "optimises one objective"),
    ]:
        result = runner.invoke(cli, ["run", "--tracking-uri", uri, *args])
        assert result.exit_code == 1 and message in result.output
        assert "Traceback" not in result.output


def test_backend_survives_pickling_and_rebuilds_from_its_options():
    backend = MLPBackend(dataset="wine", folds=2, max_epochs=5)
    clone = pickle.loads(pickle.dumps(backend))
    params = {"max_epochs": 3, "n_neurons": 16}
    assert clone.evaluate(params, None, hpt.TrialContext(0, seed=1)).value == pytest.approx(
        backend.evaluate(params, None, hpt.TrialContext(0, seed=1)).value
    )
    rebuilt = MLPBackend(**backend.options())
    assert rebuilt.default_space() == backend.default_space()
    assert rebuilt.default_space()["max_epochs"].value == 5
    assert (backend.x_test == rebuilt.x_test).all()


def test_final_report_scores_the_model_the_trial_kept(tmp_path):
    backend = MLPBackend(dataset="iris")
    params = {"max_epochs": 6, "dropout": 0.1}
    ctx = hpt.TrialContext(0, seed=3, checkpoint_dir=tmp_path / "trial-0000")
    backend.evaluate(params, None, ctx)
    from_checkpoint = backend.final_report(params, 3, ctx.checkpoint_dir)
    assert 0.0 <= from_checkpoint["test_accuracy"] <= 1.0 and from_checkpoint["test_loss"] > 0
    # without the checkpoint the configuration is trained again, the same way: the same model
    assert backend.final_report(params, 3) == pytest.approx(from_checkpoint)
    assert backend.final_report(params, 3, tmp_path / "elsewhere") == pytest.approx(from_checkpoint)
    # a checkpoint of another configuration is not used
    other = backend.final_report({**params, "dropout": 0.0}, 3, ctx.checkpoint_dir)
    assert other != pytest.approx(from_checkpoint)


def test_lr_from_finder_narrows_the_learning_rate_range():
    tuned = MLPBackend(dataset="iris", lr_from_finder=True)
    suggestion = tuned.find_learning_rate().suggestion  # the same test (same seed and data) it ran at construction
    lr = tuned.default_space()["learning_rate"]
    assert lr.log and (lr.low, lr.high) == pytest.approx((suggestion / 10, suggestion * 10))
    assert narrowed_range(1e-9) == pytest.approx((1e-6, 1e-4)) and narrowed_range(5.0)[1] == pytest.approx(1.0)
    assert tuned.options()["lr_from_finder"] is True


def test_lr_find_command_suggests_a_rate_and_saves_a_plot(tmp_path):
    plot = tmp_path / "lr.png"
    args = ["lr-find", "--dataset", "wine", "--steps", "60", "--set", "optimizer=sgd", "--plot", str(plot), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["suggestion"] == pytest.approx(out["min_loss_rate"] / 10)
    assert out["min_loss_rate"] in out["learning_rates"] and len(out["losses"]) <= 60
    assert plot.stat().st_size > 1000
    from mlflow.tracking import MlflowClient

    logged = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(out["mlflow_run_id"])
    assert logged.info.run_name == "lr-find-wine" and logged.data.params["optimizer"] == "sgd"
    assert logged.data.metrics["suggested_learning_rate"] == pytest.approx(out["suggestion"])
    assert [a.path for a in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").list_artifacts(logged.info.run_id)] == [
        "lr.png"
    ]
    bad = CliRunner().invoke(cli, ["lr-find", "--set", "optimiser=sgd", "--no-plot"])
    assert bad.exit_code == 1 and "error: --set 'optimiser=sgd'" in bad.output


def test_device_must_exist():
    with pytest.raises(HptError, match="unknown device"):
        MLPBackend(dataset="iris", device="gpu")
