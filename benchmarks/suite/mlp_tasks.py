"""Network-tuning tasks: Bayesmark's scikit-learn MLP-adam and MLP-sgd, and hpt's own `mlp` backend.

Bayesmark 0.0.8 does not import under NumPy 2 / scikit-learn >= 1.2, so its task definitions are
reimplemented here from `bayesmark/sklearn_funcs.py` and `bayesmark/data.py`: the same search
spaces (bayesmark's "logit" and "log" warps become parameters searched in that warped space and
mapped back before the model sees them), the same fixed settings (early stopping; sgd with
inverse-scaling rate and Nesterov momentum), features robust-standardised on their central 86 %,
a fixed 80 / 20 split of which the 80 % is scored by 5-fold cross-validation: negative log-loss
(cross-entropy) for classifiers, mean squared error on the standardised target for regressors.
Two departures, both to make a seed's run repeatable: the MLP's own random_state is fixed at 0,
and the training set is capped at `MAX_ROWS` rows (digits: 800 of 1437) so that one evaluation
takes about a second on this machine.

hpt's `mlp` backend runs its default space with `max_epochs` capped (`HPT_MAX_EPOCHS`) and early
stopping, on the datasets named in the issue; its objective is the validation loss it reports.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from hpt.space import Float, Int, Params, Space

MAX_ROWS = 800
HPT_MAX_EPOCHS = 15
CV_SPLITS = 5


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


# name -> (kind, warp, low, high) exactly as bayesmark's api_config for MLP-adam / MLP-sgd
_BAYESMARK_SPACES: dict[str, dict[str, tuple[str, str, float, float]]] = {
    "MLP-adam": {
        "hidden_layer_sizes": ("int", "linear", 50, 200),
        "alpha": ("real", "log", 1e-5, 1e1),
        "batch_size": ("int", "linear", 10, 250),
        "learning_rate_init": ("real", "log", 1e-5, 1e-1),
        "tol": ("real", "log", 1e-5, 1e-1),
        "validation_fraction": ("real", "logit", 0.1, 0.9),
        "beta_1": ("real", "logit", 0.5, 0.99),
        "beta_2": ("real", "logit", 0.9, 1.0 - 1e-6),
        "epsilon": ("real", "log", 1e-9, 1e-6),
    },
    "MLP-sgd": {
        "hidden_layer_sizes": ("int", "linear", 50, 200),
        "alpha": ("real", "log", 1e-5, 1e1),
        "batch_size": ("int", "linear", 10, 250),
        "learning_rate_init": ("real", "log", 1e-5, 1e-1),
        "power_t": ("real", "logit", 0.1, 0.9),
        "tol": ("real", "log", 1e-5, 1e-1),
        "momentum": ("real", "logit", 0.001, 0.999),
        "validation_fraction": ("real", "logit", 0.1, 0.9),
    },
}
_FIXED = {
    "MLP-adam": {"solver": "adam", "early_stopping": True},
    "MLP-sgd": {"solver": "sgd", "early_stopping": True, "learning_rate": "invscaling", "nesterovs_momentum": True},
}
BAYESMARK_DATASETS = {
    "breast": "classification",
    "digits": "classification",
    "wine": "classification",
    "iris": "classification",
    "diabetes": "regression",
}


def bayesmark_space(model: str) -> Space:
    params = {}
    for name, (kind, warp, low, high) in _BAYESMARK_SPACES[model].items():
        if kind == "int":
            params[name] = Int(int(low), int(high))
        elif warp == "logit":
            params[name] = Float(_logit(low), _logit(high))  # searched in logit space, as bayesmark does
        else:
            params[name] = Float(low, high, log=warp == "log")
    return Space(params)


@cache
def _data(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import RobustScaler

    loader = {
        "breast": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
        "diabetes": datasets.load_diabetes,
    }[dataset]
    x, y = loader(return_X_y=True)
    x = RobustScaler(quantile_range=(7.0, 93.0)).fit_transform(x)  # bayesmark's robust_standardize(q_level=0.86)
    if BAYESMARK_DATASETS[dataset] == "regression":
        y = RobustScaler(quantile_range=(7.0, 93.0)).fit_transform(y.reshape(-1, 1)).ravel()
    stratify = y if BAYESMARK_DATASETS[dataset] == "classification" else None
    x, _, y, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=stratify)
    return x[:MAX_ROWS], y[:MAX_ROWS]


@dataclass(frozen=True)
class BayesmarkTask:
    """One Bayesmark sklearn task: an MLP model over one dataset, scored by 5-fold CV loss."""

    model: str
    dataset: str
    family: str = "bayesmark"
    optimum: float = field(default=math.nan)
    noise: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.model}-{self.dataset}"

    @property
    def space(self) -> Space:
        return bayesmark_space(self.model)

    def true_value(self, params: Params) -> float:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import cross_val_score
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        kwargs: dict[str, Any] = dict(_FIXED[self.model], random_state=0)
        for name, (kind, warp, _, _) in _BAYESMARK_SPACES[self.model].items():
            value = params[name]
            kwargs[name] = int(value) if kind == "int" else _sigmoid(value) if warp == "logit" else float(value)
        regression = BAYESMARK_DATASETS[self.dataset] == "regression"
        estimator = (MLPRegressor if regression else MLPClassifier)(**kwargs)
        scoring = "neg_mean_squared_error" if regression else "neg_log_loss"
        x, y = _data(self.dataset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)  # batch_size clipped to a small fold
            scores = cross_val_score(estimator, x, y, scoring=scoring, cv=CV_SPLITS, error_score=np.nan)
        loss = -float(np.mean(scores))
        return loss if math.isfinite(loss) else 1e3  # a diverged fit: a large loss, as a failed trial


@dataclass(frozen=True)
class HptMlpTask:
    """hpt's PyTorch MLP backend on a dataset, default space, `max_epochs` capped."""

    dataset: str
    family: str = "hpt-mlp"
    optimum: float = field(default=math.nan)
    noise: float = 0.0

    @property
    def name(self) -> str:
        return f"hpt-mlp-{self.dataset}"

    def _backend(self):
        return _hpt_backend(self.dataset)

    @property
    def space(self) -> Space:
        return self._backend().default_space()

    def true_value(self, params: Params) -> float:
        from hpt.backend import Result, TrialContext

        result = self._backend().evaluate(params, None, TrialContext(0, seed=0))
        value = result.value if isinstance(result, Result) else result
        value = float(value[0] if isinstance(value, list | tuple) else value)
        return value if math.isfinite(value) else 1e3


@cache
def _hpt_backend(dataset: str):
    from hpt_torch.backend import MLPBackend

    # Cached results before the one-engine revision came from an autograd loop with other initial weights
    # and data order: runs of today's engine differ from them by that.
    return MLPBackend(dataset=dataset, max_epochs=HPT_MAX_EPOCHS, patience=4)


TASKS = {
    t.name: t
    for t in [BayesmarkTask(m, d) for m in _BAYESMARK_SPACES for d in ("breast", "wine", "iris", "digits", "diabetes")]
    + [HptMlpTask(d) for d in ("digits", "breast_cancer", "wine", "diabetes")]
}
