"""The `command` backend end to end: `hpt run --backend command` as a user types it, with parallel workers,
median pruning, the dask executor and the example scripts under examples/."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import hpt
import pytest
from conftest import child_runs, cli_json
from hpt import TrialState
from hpt_command.backend import CommandBackend
from mlflow.tracking import MlflowClient

PY = sys.executable
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CURVE = """
    import json, sys, time
    x = float(sys.argv[1])
    print("starting")
    for step in range(8):
        print(json.dumps({"step": step, "loss": x + 1 / (step + 1)}))
        time.sleep(float(sys.argv[2]))
    print(json.dumps({"loss": x + 1 / 8, "size": 3}))
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.slow
def test_hpt_run_with_two_workers_keeps_each_scripts_output_in_its_child_run(tmp_path: Path):
    train = write(tmp_path, "train.py", CURVE)
    write(tmp_path, "space.yaml", "x: {type: float, low: 0.0, high: 1.0}\n")
    summary = cli_json(
        "run", "--backend", "command", "--command", f"{PY} {train} {{x}} 0", "--space", "space.yaml",
        "--metric", "loss", "--direction", "minimize", "--workers", "2", "--trials", "4", "--strategy", "random",
        cwd=tmp_path,
    )  # fmt: skip
    assert summary["trials"]["complete"] == 4 and summary["study"].startswith("random-command-train-")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    runs = child_runs(uri, summary["parent_run_id"])
    assert len(runs) == 4
    for run in runs:
        x = float(run.data.params["x"])
        assert run.data.metrics["objective"] == pytest.approx(x + 1 / 8) and run.data.metrics["size"] == 3
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 8
        stdout = Path(client.download_artifacts(run.info.run_id, "logs/stdout.txt", str(tmp_path)))
        assert stdout.read_text().startswith("starting\n")


def test_median_pruning_stops_scripts_whose_curve_is_worse(tmp_path: Path):
    train = write(tmp_path, "train.py", CURVE)
    backend = CommandBackend(command=f"{PY} {train} {{x}} 0.05", metric="loss", grace=1)
    study = hpt.optimize(
        backend,
        {"x": hpt.Categorical([0.0, 0.1, 0.2, 5.0])},
        strategy="grid",
        trials=4,
        prune="median",
        prune_options={"warmup_steps": 1},
    )
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert study.trials[-1].last_step == 1  # stopped at the first step judged, not after its 8 steps


@pytest.mark.slow
def test_the_dask_executor_runs_the_scripts(tmp_path: Path):
    pytest.importorskip("distributed")
    train = write(tmp_path, "train.py", CURVE)
    backend = CommandBackend(command=f"{PY} {train} {{x}} 0", metric="loss")
    study = hpt.optimize(
        backend, {"x": hpt.Float(0.0, 1.0)}, strategy="random", trials=3, seed=0, executor="dask", workers=2
    )
    assert all(t.value == pytest.approx(t.params["x"] + 1 / 8) for t in study.trials)


@pytest.mark.slow
def test_the_scikit_learn_example_is_tuned_through_mlflow_with_hyperband(tmp_path: Path):
    summary = cli_json(
        "run", "--backend", "command", "--space", str(EXAMPLES / "train_sklearn_space.yaml"),
        "--command", f"{PY} {EXAMPLES / 'train_sklearn_mlflow.py'} --lr {{lr}} --alpha {{alpha}} --hidden {{hidden}} "
        "--epochs {budget} --checkpoint-dir {checkpoint_dir}",
        "--metric", "val_accuracy", "--direction", "maximize", "--strategy", "hyperband", "--max-budget", "3",
        "--trials", "3", "--workers", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert summary["trials"]["complete"] == 3 and 0 < summary["best_value"] <= 1
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    runs = child_runs(uri, summary["parent_run_id"])
    promoted = [r for r in runs if "," in r.data.tags.get("hpt.budget_history", "")]
    assert promoted
    for run in promoted:  # continued from its checkpoint: each epoch logged once, by the script
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(steps) == list(range(3)) and run.data.tags["script"] == "train_sklearn_mlflow.py"


@pytest.mark.slow
def test_the_pytorch_example_is_tuned_from_its_json_lines(tmp_path: Path):
    pytest.importorskip("torch")
    summary = cli_json(
        "run", "--backend", "command", "--space", str(EXAMPLES / "train_torch_space.yaml"),
        "--command", f"{PY} {EXAMPLES / 'train_torch.py'} --lr {{lr}} --hidden {{hidden}} --layers {{layers}} "
        "--dropout {dropout} --epochs 2",
        "--metric", "val_loss", "--trials", "2", "--strategy", "random",
        cwd=tmp_path,
    )  # fmt: skip
    assert summary["trials"]["complete"] == 2 and 0 < summary["best_value"] < 3
