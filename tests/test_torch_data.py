"""Datasets of the mlp backend: loading, clear errors on bad input, splits and standardisation; the package's
estimators."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hpt.errors import DataError  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.datasets import CLASSIFICATION, REGRESSION, load_dataset, make_folds  # noqa: E402


def write_csv(path, text):
    path.write_text(text)
    return path


def test_bundled_dataset_splits_are_stratified_and_disjoint():
    ds = load_dataset("wine")
    (fold,), x_test, y_test = make_folds(ds, seed=0)
    sizes = len(fold.y_train), len(fold.y_valid), len(y_test)
    assert sum(sizes) == len(ds.y) == 178
    assert sizes == pytest.approx((0.6 * 178, 0.2 * 178, 0.2 * 178), abs=1.5)
    share = np.bincount(ds.y) / len(ds.y)
    for part in (fold.y_train, fold.y_valid, y_test):
        assert np.allclose(np.bincount(part, minlength=3) / len(part), share, atol=0.05)


def test_features_are_standardised_with_training_rows_only():
    ds = load_dataset("diabetes")
    (fold,), x_test, y_test = make_folds(ds, seed=0)
    assert np.allclose(fold.x_train.mean(0), 0, atol=1e-5)
    assert np.allclose(fold.x_train.std(0), 1, atol=1e-3)
    assert not np.allclose(fold.x_valid.mean(0), 0, atol=1e-3)  # valid rows did not shape the scaling
    # regression targets are standardised the same way and map back to the data's units
    assert fold.y_train.mean() == pytest.approx(0, abs=1e-5)
    restored = np.sort(np.concatenate([fold.y_train, fold.y_valid, y_test]) * fold.y_std + fold.y_mean)
    assert np.allclose(restored, np.sort(ds.y), atol=1e-3)


def test_k_folds_partition_the_non_test_rows():
    ds = load_dataset("iris")
    folds, _, y_test = make_folds(ds, folds=3, seed=0)
    assert len(folds) == 3
    assert all(len(f.y_train) + len(f.y_valid) == len(ds.y) - len(y_test) for f in folds)
    assert sum(len(f.y_valid) for f in folds) == len(ds.y) - len(y_test)
    with pytest.raises(DataError, match="--folds must be at least 2"):
        make_folds(ds, folds=1)


def test_synthetic_sets_and_subsamples_have_the_requested_size():
    assert load_dataset("friedman", size=150).x.shape == (150, 10)
    assert load_dataset("classification", size=120).task == CLASSIFICATION
    digits = load_dataset("digits", size=300)
    assert len(digits.y) == 300 and digits.n_classes == 10


def test_csv_with_text_classes_and_numeric_regression_target(tmp_path):
    rows = "\n".join(f"{i % 7},{(i * 3) % 11},{'cat' if i % 2 else 'dog'},{i * 0.37:.2f}" for i in range(60))
    path = write_csv(tmp_path / "pets.csv", "a,b,label,size\n" + rows)
    pets = load_dataset(data=path, target="label")
    assert pets.task == CLASSIFICATION and pets.classes == ["cat", "dog"] and pets.x.shape == (60, 3)
    numeric = write_csv(
        tmp_path / "prices.csv", "a,b,price\n" + "\n".join(f"{i % 7},{i % 5},{i * 0.37:.2f}" for i in range(60))
    )
    assert load_dataset(data=numeric, target="price").task == REGRESSION
    assert load_dataset(data=numeric, target="a").task == CLASSIFICATION  # few integer values: classes
    backend = MLPBackend(data=str(path), target="label")
    assert backend.describe() == "mlp-pets"
    assert backend.tags() == {"hpt.dataset": "pets", "hpt.task": CLASSIFICATION}


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("a,b,y\n" + "1,2,0\n2,3,1\n" * 15, "z", "target column 'z' is not in"),
        ("", "y", "is empty"),
        ("a,b,y\n", "y", "no rows"),
        ("a,b,y\n" + "1,2,0\n2,3,0\n" * 15, "y", "single class"),
        ("a,b,y\n" + "1,2,\n2,3,1\n" * 15, "y", "target column 'y' of bad.csv has 15 missing value"),
    ],
    ids=["missing-target", "empty", "header-only", "single-class", "unlabelled-rows"],
)
def test_bad_csv_is_one_clear_data_error_at_construction(tmp_path, content, target, message):
    path = write_csv(tmp_path / "bad.csv", content)
    with pytest.raises(DataError, match=message) as info:
        MLPBackend(data=str(path), target=target)
    assert "\n" not in str(info.value)


def test_unknown_dataset_and_missing_file_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'mnist'; available: digits"):
        MLPBackend(dataset="mnist")
    with pytest.raises(DataError, match="does not exist"):
        MLPBackend(data=str(tmp_path / "nope.csv"), target="y")
    with pytest.raises(DataError, match="needs --target"):
        MLPBackend(data=str(tmp_path / "nope.csv"))


def test_the_estimators_come_from_the_package_and_torch_loads_only_then():
    """`from hpt_torch import MLPClassifier` as the docs write it; `import hpt_torch` alone stays cheap."""
    code = (
        "import sys, hpt_torch\n"
        "assert 'torch' not in sys.modules and 'hpt_torch.estimators' not in sys.modules\n"
        "from hpt_torch import MLPClassifier, MLPRegressor\n"
        "from hpt_torch.estimators import MLPClassifier as C, MLPRegressor as R\n"
        "assert (MLPClassifier, MLPRegressor) == (C, R) and 'torch' in sys.modules\n"
        "try:\n"
        "    from hpt_torch import MLPNope\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cannot import name 'MLPNope' from 'hpt_torch'")
