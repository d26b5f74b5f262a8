"""scikit-learn estimators around the same network and training engine as the `mlp` backend, so
`GridSearchCV`, `RandomizedSearchCV`, pipelines and `clone` work on it too.

    from hpt_torch.estimators import MLPClassifier
    GridSearchCV(MLPClassifier(max_epochs=30), {"n_neurons": [32, 128]}, cv=3).fit(X, y)

Inputs are standardised inside `fit`; a `validation_fraction` of the rows is held out for early
stopping (0 monitors the training loss instead). `score` is scikit-learn's: accuracy for the
classifier, R^2 for the regressor (use `scoring="neg_mean_squared_error"` in a search for -MSE).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from hpt_torch.datasets import CLASSIFICATION, REGRESSION, fold_from_arrays
from hpt_torch.engine import DeviceData, Member, Stack
from hpt_torch.hyperparams import DEFAULTS, resolve
from hpt_torch.metrics import predict_classes
from hpt_torch.network import build_mlp
from hpt_torch.training import cpu_settings, resolve_device


class _MLPEstimator(BaseEstimator):
    """Shared parameters and `fit`; the hyperparameters mean what they mean in the backend's space."""

    _task = ""

    def __init__(
        self,
        n_hidden: int = DEFAULTS["n_hidden"],
        n_neurons: int = DEFAULTS["n_neurons"],
        layer_shape: str = DEFAULTS["layer_shape"],
        activation: str = DEFAULTS["activation"],
        init: str = DEFAULTS["init"],
        optimizer: str = DEFAULTS["optimizer"],
        learning_rate: float = DEFAULTS["learning_rate"],
        momentum: float = DEFAULTS["momentum"],
        batch_size: int = DEFAULTS["batch_size"],
        lr_schedule: str = DEFAULTS["lr_schedule"],
        warmup_epochs: int = DEFAULTS["warmup_epochs"],
        dropout: float = DEFAULTS["dropout"],
        l1: float = DEFAULTS["l1"],
        l2: float = DEFAULTS["l2"],
        max_epochs: int = DEFAULTS["max_epochs"],
        patience: int = DEFAULTS["patience"],
        validation_fraction: float = 0.1,
        device: str = "cpu",
        n_threads: int = 1,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_hidden = n_hidden
        self.n_neurons = n_neurons
        self.layer_shape = layer_shape
        self.activation = activation
        self.init = init
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.dropout = dropout
        self.l1 = l1
        self.l2 = l2
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state

    def _fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> _MLPEstimator:
        params = resolve({name: getattr(self, name) for name in DEFAULTS})
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        fold = fold_from_arrays(x, y, self._task == CLASSIFICATION, self.validation_fraction, seed)
        with cpu_settings(self.n_threads):
            data = DeviceData.from_folds([fold], self._task, n_classes, resolve_device(self.device))
            member = Member(params, 0, seed, params["max_epochs"])
            stack = Stack([member], data, dropout_seed=seed)
            stack.train()
            (best,) = stack.member_states([0])
        self.model_ = build_mlp(params, best["best"] or best["weights"]).eval()
        self.x_mean_, self.x_scale_, self.y_mean_, self.y_std_ = fold.x_mean, fold.x_scale, fold.y_mean, fold.y_std
        state = member.state
        self.n_epochs_, self.best_epoch_, self.best_score_ = state.epoch, state.best_epoch, state.best_value
        return self

    def _outputs(self, x: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        x = validate_data(self, x, reset=False, dtype=np.float32)
        with torch.no_grad(), cpu_settings(self.n_threads):
            return self.model_(torch.as_tensor(((x - self.x_mean_) / self.x_scale_).astype(np.float32)))


class MLPClassifier(ClassifierMixin, _MLPEstimator):
    """A PyTorch MLP classifier: softmax / cross-entropy for several classes, one logit / BCE for two."""

    _task = CLASSIFICATION

    def fit(self, X: Any, y: Any) -> MLPClassifier:  # noqa: N803 - scikit-learn's names
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"the target has only one class ({self.classes_[0]!r}); a classifier needs two or more")
        return self._fit(X, codes.astype(np.int64), len(self.classes_))

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        out = self._outputs(X)
        if out.shape[1] == 1:
            positive = torch.sigmoid(out)
            return torch.cat([1 - positive, positive], dim=1).numpy().astype(np.float64)
        return torch.softmax(out, dim=1).numpy().astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        classes = predict_classes(self._outputs(X)).numpy()  # checks the fit first
        return self.classes_[classes]


class MLPRegressor(RegressorMixin, _MLPEstimator):
    """A PyTorch MLP regressor (linear output, MSE on the standardised target)."""

    _task = REGRESSION

    def fit(self, X: Any, y: Any) -> MLPRegressor:  # noqa: N803
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        return self._fit(X, y.astype(np.float32), 0)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return (self._outputs(X).squeeze(1).numpy() * self.y_std_ + self.y_mean_).astype(np.float64)
