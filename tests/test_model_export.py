"""The best trial's network logged on the parent run as an MLflow model that takes raw feature columns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

import pandas as pd  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import invoke_json  # noqa: E402
from hpt_reports.predict import predict  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

# Loads the model with hpt unimportable (the model carries its code), predicts the CSV's rows, prints accuracy.
LOAD_AND_SCORE = """
import sys
sys.modules["hpt"] = sys.modules["hpt_torch"] = None
import mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
rows = pd.read_csv(sys.argv[3])
labels = rows.pop("target")
predicted = model.predict(rows)
probabilities = model.predict(rows.head(2), params={"output": "probabilities"})
print(float((pd.Series(predicted) == labels).mean()), list(probabilities.columns))
"""


def wine_test_rows(path: Path) -> Path:
    """The raw rows of the wine test split the backend holds out (its split: stratified 20 %, seed 0)."""
    import numpy as np
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    x, y = load_wine(return_X_y=True, as_frame=True)
    _, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    x.iloc[test].assign(target=y.iloc[test]).to_csv(path, index=False)
    return path


def test_the_logged_model_predicts_raw_rows_with_the_logged_test_accuracy(tmp_path: Path, store: str):
    out = invoke_json(
        "run", "--dataset", "wine", "--trials", "2", "--backend", "mlp", "-B", "max_epochs=8",
        "--register-model", "wine-mlp", "--tracking-uri", store, "--quiet",
    )  # fmt: skip
    run_id = out["parent_run_id"]
    client = MlflowClient(store)
    parent = client.get_run(run_id)
    assert parent.data.tags["hpt.model"] == "model"
    assert {a.path for a in client.list_artifacts(run_id, "model")} >= {"model/MLmodel", "model/input_example.json"}
    assert parent.data.tags["hpt.registered_model"] == "wine-mlp/1"
    assert client.get_model_version("wine-mlp", "1").run_id == run_id

    csv = wine_test_rows(tmp_path / "test.csv")
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_SCORE, store, run_id, str(csv)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    accuracy, columns = done.stdout.split(" ", 1)
    assert float(accuracy) == pytest.approx(parent.data.metrics["test_accuracy"])
    assert json.loads(columns.replace("'", '"')) == ["0", "1", "2"]

    written = tmp_path / "predictions.csv"
    done = CliRunner().invoke(predict, [run_id, "--data", str(csv), "--output", str(written), "--tracking-uri", store])
    assert done.exit_code == 0, done.output
    rows = pd.read_csv(written)
    assert (rows["prediction"] == rows["target"]).mean() == pytest.approx(float(accuracy))
    pd.read_csv(csv).drop(columns=["hue", "proline"]).to_csv(tmp_path / "short.csv", index=False)
    short = CliRunner().invoke(predict, [run_id, "--data", str(tmp_path / "short.csv"), "--tracking-uri", store])
    assert short.exit_code == 1 and short.output.startswith("error: the data lacks feature column(s) hue, proline;")
    unknown = CliRunner().invoke(predict, ["nope", "--data", str(csv), "--tracking-uri", store])
    assert unknown.exit_code == 1 and unknown.output.startswith("error: no run 'nope' in ")


def test_the_function_backend_logs_no_model(store: str, tmp_path: Path):
    out = invoke_json(
        "run", "--backend", "function", "--function", "branin", "--trials", "3", "--tracking-uri", store, "--quiet"
    )
    client = MlflowClient(store)
    assert "hpt.model" not in client.get_run(out["parent_run_id"]).data.tags
    assert not client.list_artifacts(out["parent_run_id"], "model")
    (tmp_path / "rows.csv").write_text("x1,x2\n1,2\n")
    done = CliRunner().invoke(
        predict, [out["parent_run_id"], "--data", str(tmp_path / "rows.csv"), "--tracking-uri", store]
    )
    assert done.exit_code == 1 and done.output.strip() == (
        f"error: run {out['parent_run_id']} has no logged model "
        "(backend 'function'; the mlp backend logs one when a study finishes)"
    )
