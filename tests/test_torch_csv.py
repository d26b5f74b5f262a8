"""CSV files with text columns and missing values: one-hot encoding and imputation learnt from the training rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from hpt.backend import TrialContext  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.datasets import load_dataset, make_folds  # noqa: E402
from hpt_torch.preprocessing import Preprocessor  # noqa: E402


def shop_csv(path: Path, rows: int = 300) -> Path:
    """`colour` (text) decides the class; `weight` has gaps; `shop` is noise."""
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], rows)
    weight = rng.normal(10, 2, rows).round(2).astype(object)
    weight[::10] = None
    frame = pd.DataFrame(
        {
            "colour": colour,
            "weight": weight,
            "shop": rng.choice(["north", "south"], rows),
            "label": np.where(colour == "red", "keep", "return"),
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_text_columns_are_one_hot_encoded_from_the_training_rows_only(tmp_path):
    ds = load_dataset(data=shop_csv(tmp_path / "shop.csv"), target="label")
    assert list(ds.features.columns) == ["colour", "weight", "shop"]
    (fold,), x_test, _ = make_folds(ds, seed=0)
    encoder = fold.encoder
    assert encoder.categories == {"colour": ["blue", "green", "red"], "shop": ["north", "south"]}
    assert encoder.input_names == ["colour=blue", "colour=green", "colour=red", "weight", "shop=north", "shop=south"]
    assert fold.x_train.shape[1] == x_test.shape[1] == 6
    assert np.isfinite(fold.x_train).all() and np.isfinite(x_test).all()  # the gaps are filled


def test_unknown_and_missing_categories_encode_as_no_category():
    train = pd.DataFrame({"colour": ["red", "blue", "red"], "size": [1.0, None, 3.0]})
    encoder = Preprocessor.fit(train)
    encoded = encoder.encode(pd.DataFrame({"size": [None, 5.0], "colour": ["purple", None], "extra": [0, 0]}))
    np.testing.assert_array_equal(encoded, [[0, 0, 2.0], [0, 0, 5.0]])  # size's gap: the training median 2
    with pytest.raises(ValueError, match="missing feature column"):
        encoder.encode(pd.DataFrame({"colour": ["red"]}))


def test_a_csv_with_text_columns_and_gaps_trains(tmp_path):
    backend = MLPBackend(data=str(shop_csv(tmp_path / "shop.csv")), target="label", max_epochs=30, patience=5)
    params = {**backend.default_space().sample(np.random.default_rng(0)), "learning_rate": 1e-2, "n_hidden": 1}
    result = backend.evaluate(params, None, TrialContext(0, seed=0))
    assert result.metrics["best_valid_accuracy"] > 0.9  # colour decides the class: only its one-hot can tell


def test_loading_a_csv_says_in_one_line_how_it_is_read(tmp_path, caplog):
    path = shop_csv(tmp_path / "shop.csv")
    with caplog.at_level("INFO", logger="hpt_torch.datasets"):
        load_dataset(data=path, target="label")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "hpt_torch.datasets"]
    assert line == (
        "shop.csv: 300 rows, 3 feature columns; target 'label': 2 text values, so classification; "
        "text columns one-hot encoded: colour (3 values), shop (2 values); "
        "missing numbers filled with the training median: weight (30)"
    )
    frame = pd.DataFrame({"x": np.arange(40.0), "gap": [None, "a"] * 20, "y": np.arange(40) % 4})
    frame.to_csv(tmp_path / "codes.csv", index=False)
    caplog.clear()
    with caplog.at_level("INFO", logger="hpt_torch.datasets"):
        assert load_dataset(data=tmp_path / "codes.csv", target="y").task == "classification"
        assert load_dataset(data=tmp_path / "codes.csv", target="y", task="regression").task == "regression"
    assert [r.getMessage() for r in caplog.records] == [
        "codes.csv: 40 rows, 2 feature columns; target 'y': 4 whole-number values, so classification "
        "(--task regression reads them as numbers); text columns one-hot encoded: gap (1 value); "
        "missing text encoded as no category: gap (20)",
        "codes.csv: 40 rows, 2 feature columns; target 'y': regression (--task); text columns one-hot encoded: "
        "gap (1 value); missing text encoded as no category: gap (20)",
    ]
