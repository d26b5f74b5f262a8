"""The best trial's network as an MLflow pyfunc model that takes raw feature columns.

    model = mlflow.pyfunc.load_model("runs:/<parent run id>/model")
    model.predict(df)                                      # class labels, or values for regression
    model.predict(df, params={"output": "probabilities"})  # one column per class

The model holds the network and the preprocessing of the fold it was trained on: median imputation
and one-hot encoding (`hpt_torch.preprocessing`), feature standardisation, the class labels, the
regression target's scale. This module and the preprocessing one are stored in the model by value,
so loading it needs torch, numpy, pandas and MLflow, not hpt.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

OUTPUTS = ("labels", "probabilities")
"""`params={"output": ...}` of `predict`: class labels (the default) or class probabilities."""


class MLPModel(mlflow.pyfunc.PythonModel):
    """Raw columns -> encoded, standardised inputs -> network -> labels, probabilities or values."""

    def __init__(
        self,
        network: Any,
        encoder: Any,
        x_mean: np.ndarray,
        x_scale: np.ndarray,
        classes: list | None,
        y_mean: float = 0.0,
        y_std: float = 1.0,
    ) -> None:
        self.network = network
        self.encoder = encoder
        self.x_mean, self.x_scale = x_mean, x_scale
        self.classes = classes
        self.y_mean, self.y_std = y_mean, y_std

    def outputs(self, frame: Any) -> np.ndarray:
        """The network's raw outputs for a DataFrame of raw feature columns."""
        import torch

        x = ((self.encoder.encode(frame) - self.x_mean) / self.x_scale).astype(np.float32)
        self.network.eval()
        with torch.no_grad():
            return self.network(torch.as_tensor(x)).numpy()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        """Class labels (or class probabilities with `params={"output": "probabilities"}`), or regression values."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        output = (params or {}).get("output", "labels")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; use {' or '.join(OUTPUTS)}")
        out = self.outputs(frame)
        if self.classes is None:  # regression: back to the target's units
            return out[:, 0] * self.y_std + self.y_mean
        if out.shape[1] == 1:  # binary: one logit for the second class
            second = 1.0 / (1.0 + np.exp(-out[:, 0]))
            probabilities = np.stack([1.0 - second, second], axis=1)
        else:
            shifted = np.exp(out - out.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        if output == "probabilities":
            return pd.DataFrame(probabilities, columns=[str(c) for c in self.classes])
        return np.asarray(self.classes, dtype=object)[probabilities.argmax(axis=1)].tolist()


def save_mlp_model(path: Path, model: MLPModel, example: dict[str, list]) -> None:
    """Write `model` as an MLflow model directory at `path`, with a signature inferred from `example`
    (a few raw rows, column -> values) and that example."""
    import cloudpickle
    import torch
    from mlflow.models import infer_signature

    import hpt_torch.preprocessing
    import hpt_torch.serving

    frame = pd.DataFrame(example)
    for name in frame.columns:  # numbers as doubles: pandas reads any numeric CSV column into one losslessly
        if pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name]):
            frame[name] = frame[name].astype(np.float64)
    params = {"output": "labels"} if model.classes is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # integer class labels: they are never missing
        signature = infer_signature(frame, model.predict(None, frame), params=params)
    requirements = [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]
    modules = (hpt_torch.preprocessing, hpt_torch.serving)
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # its advice on pickling and type hints is for hand-written models
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                str(path), python_model=model, signature=signature, input_example=frame, pip_requirements=requirements
            )
    finally:
        pyfunc_log.setLevel(level)
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
