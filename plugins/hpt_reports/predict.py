"""`hpt predict`: predict a CSV file's rows with the model a study logged on its parent run.

hpt predict RUN_ID --data new.csv --output predictions.csv
hpt predict RUN_ID --data new.csv --probabilities
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click
from hpt.cli_options import guard
from hpt.errors import HptError

MODEL = "model"
PREDICTION = "prediction"


def load_study_model(run_id: str, tracking_uri: str | None, directory: Path) -> Any:
    """The pyfunc model logged on the study's parent run, downloaded into `directory`; one clear line for
    an unknown run id or a study without a model."""
    from hpt.tracking import make_client
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import load_model

    client = make_client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise HptError(f"no run {run_id!r} in {client.tracking_uri}; `hpt studies` lists the studies") from None
    if "hpt.model" not in run.data.tags:
        backend = run.data.tags.get("hpt.backend", "?")
        raise HptError(
            f"run {run_id} has no logged model (backend {backend!r}; the mlp backend logs one when a study finishes)"
        )
    return load_model(client.download_artifacts(run_id, MODEL, str(directory)))


def read_rows(path: str) -> Any:
    """The CSV file's rows; one clear line for a missing, empty, binary or non-UTF-8 file, a directory, or a
    header that repeats a column name (the checks `hpt run --data` makes)."""
    from hpt_torch.datasets import read_csv

    return read_csv(path)


NUMBER_TYPES = {"double", "float", "long", "integer"}


def fit_schema(model: Any, features: Any) -> Any:
    """The feature columns as the model's input schema types them, or one line naming the first column whose
    values cannot be read so and the type the model expects.

    Whole numbers become doubles and numbers in a text column become text, as they would have been in the
    training CSV (MLflow refuses both); a column with no value at all takes the expected type.
    """
    import numpy as np
    import pandas as pd

    schema = model.metadata.get_input_schema()
    out = features.copy()
    for spec in schema.inputs:
        name, kind = spec.name, getattr(spec.type, "name", str(spec.type))
        column = out[name]
        present = column.dropna()
        if kind in NUMBER_TYPES and not (present.empty or pd.api.types.is_numeric_dtype(column)):
            bad = present[pd.to_numeric(present, errors="coerce").isna()]
            raise HptError(_mismatch(name, "text", bad.iloc[0], "numbers", kind))
        if kind == "double":
            out[name] = column.astype("float64")
        elif kind == "string" and pd.api.types.is_bool_dtype(column):
            raise HptError(_mismatch(name, "true/false", present.iloc[0], "text", kind))
        elif kind == "string" and pd.api.types.is_numeric_dtype(column):
            whole = bool((present % 1 == 0).all())
            text = [None if pd.isna(v) else str(int(v)) if whole else str(v) for v in column]
            out[name] = pd.Series(text, index=column.index, dtype=object)
        elif kind == "boolean":
            other = present[[not isinstance(v, bool | np.bool_) for v in present]]
            if len(other):
                raise HptError(_mismatch(name, "other values", other.iloc[0], "true/false", kind))
            gaps = len(column) - len(present)
            if gaps and spec.required:
                raise HptError(
                    f"column {name!r} has {gaps} empty value(s); the model needs true or false in every row "
                    "there (the data it was trained on had no gaps in it)"
                )
    return out


def _mismatch(column: str, held: str, value: Any, expected: str, kind: str) -> str:
    return (
        f"column {column!r} holds {held} ({value!r}); the model expects {expected} ({kind}) there, "
        "as in the data it was trained on"
    )


def predict_rows(model: Any, rows: Any, probabilities: bool = False) -> Any:
    """The rows with the model's predictions appended: a `prediction` column, or one column per class."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    needed = model.metadata.get_input_schema().input_names()
    missing = [name for name in needed if name not in rows.columns]
    if missing:
        raise HptError(f"the data lacks feature column(s) {', '.join(missing)}; the model needs {', '.join(needed)}")
    features = fit_schema(model, rows[needed])
    try:
        if probabilities:
            if model.metadata.get_params_schema() is None:
                raise HptError("--probabilities needs a classification model; this one predicts values")
            out = model.predict(features, params={"output": "probabilities"})
            return pd.concat([rows.reset_index(drop=True), out.add_prefix("p_").reset_index(drop=True)], axis=1)
        return rows.assign(**{PREDICTION: list(model.predict(features))})
    except MlflowException as exc:  # a schema rule fit_schema does not know: MLflow's reason, without its data dump
        reason = str(exc).rsplit("Error: ", 1)[-1].strip().splitlines()[0]
        raise HptError(f"the data does not fit the model's input schema: {reason}") from None


@click.command()
@click.argument("run_id")
@click.option("--data", "data", required=True, type=click.Path(), help="CSV file with the feature columns.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the predictions here (default: stdout).")
@click.option("--probabilities", is_flag=True, help="Class probabilities (p_<class> columns) instead of labels.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@guard
def predict(run_id: str, data: str, output: str | None, probabilities: bool, tracking_uri: str | None) -> None:
    """Predict the rows of a CSV file with the best model of the study logged under RUN_ID; print the
    rows with a `prediction` column (or write them to --output).

    \b
    hpt predict 3f2a... --data new.csv --output predictions.csv
    """
    rows = read_rows(data)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_study_model(run_id, tracking_uri, Path(tmp))
        result = predict_rows(model, rows, probabilities)
    if output:
        result.to_csv(output, index=False)
        click.echo(f"{len(result)} predictions written to {output}", err=True)
    else:
        click.echo(result.to_csv(index=False), nl=False)


__all__ = ["load_study_model", "predict", "predict_rows", "read_rows"]
