"""The scikit-learn estimators: the API contract, searches, reproducibility."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hpt_torch.estimators import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV  # noqa: E402


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_params_round_trip_through_clone_and_set_params():
    est = MLPClassifier(n_neurons=16, optimizer="sgd", random_state=3)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    assert copy.set_params(dropout=0.3).dropout == 0.3 and est.dropout == 0.0
    assert {"learning_rate", "lr_schedule", "l1", "patience", "validation_fraction"} <= set(est.get_params())


def test_classifier_fits_predicts_and_keeps_label_types(iris):
    x, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(x)
    est = MLPClassifier(max_epochs=40, learning_rate=0.01, random_state=0).fit(x, labels)
    proba = est.predict_proba(x)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(1), 1)
    assert set(est.predict(x)) <= set(labels) and est.score(x, labels) > 0.85
    assert list(est.classes_) == ["setosa", "versicolor", "virginica"] and est.n_features_in_ == 4
    with pytest.raises(ValueError, match="4 features"):
        est.predict(x[:, :3])


def test_binary_classifier_uses_one_logit():
    x, y = load_breast_cancer(return_X_y=True)
    est = MLPClassifier(max_epochs=15, random_state=0).fit(x, y)
    assert est.model_[-1].out_features == 1
    assert est.predict_proba(x[:5]).shape == (5, 2) and est.score(x, y) > 0.9


def test_same_random_state_same_model(iris):
    x, y = iris
    a, b = (MLPClassifier(max_epochs=5, dropout=0.2, random_state=7).fit(x, y) for _ in range(2))
    c = MLPClassifier(max_epochs=5, dropout=0.2, random_state=8).fit(x, y)
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert not np.array_equal(a.predict_proba(x), c.predict_proba(x))


def test_grid_search_picks_among_candidates(iris):
    x, y = iris
    grid = {"n_neurons": [4, 32], "learning_rate": [1e-4, 3e-2]}
    search = GridSearchCV(MLPClassifier(max_epochs=15, random_state=0), grid, cv=3).fit(x, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["learning_rate"] == 3e-2  # 15 epochs at 1e-4 barely move the weights
    assert search.best_estimator_.score(x, y) > 0.8


def test_regressor_predicts_in_target_units_and_works_in_random_search():
    x, y = load_diabetes(return_X_y=True)
    est = MLPRegressor(max_epochs=40, learning_rate=0.01, random_state=0).fit(x, y)
    assert est.score(x, y) > 0.3  # R^2, scikit-learn's regressor score
    assert abs(est.predict(x).mean() - y.mean()) < 0.2 * y.std()
    search = RandomizedSearchCV(
        MLPRegressor(max_epochs=10, validation_fraction=0.0, random_state=0),
        {"n_neurons": [8, 16, 32], "activation": ["relu", "tanh"]},
        n_iter=2,
        cv=2,
        scoring="neg_mean_squared_error",
        random_state=0,
    ).fit(x, y)
    assert search.best_score_ < 0 and len(search.cv_results_["params"]) == 2
