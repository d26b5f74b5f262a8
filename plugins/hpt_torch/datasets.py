"""Tabular data for the MLP: scikit-learn's bundled and synthetic sets, or a CSV file; and the
train / valid / test splits (or k folds), encoded and standardised on the training rows only.

A dataset keeps its raw feature columns (a pandas DataFrame with the CSV's or the set's column names);
each fold learns its `Preprocessor` (median imputation, one-hot encoding of text columns) from its
training rows. What the backend keeps is numpy: it is pickled once per worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hpt.errors import DataError

from hpt_torch.preprocessing import Preprocessor, is_categorical

log = logging.getLogger(__name__)

CLASSIFICATION = "classification"
REGRESSION = "regression"

BUNDLED = {
    "digits": ("load_digits", CLASSIFICATION),
    "breast_cancer": ("load_breast_cancer", CLASSIFICATION),
    "wine": ("load_wine", CLASSIFICATION),
    "iris": ("load_iris", CLASSIFICATION),
    "diabetes": ("load_diabetes", REGRESSION),
}
SYNTHETIC = {"classification": CLASSIFICATION, "friedman": REGRESSION}
DATASETS = (*BUNDLED, *SYNTHETIC)
SYNTHETIC_ROWS = 1000
MAX_CLASSES_FOR_NUMERIC_TARGET = 20
MIN_ROWS = 20
_CONTROL = bytes([*range(0, 9), *range(14, 32)])
"""Bytes that CSV text never holds (tab, newlines and form feed aside): a binary file has them."""


@dataclass
class Dataset:
    """Raw feature columns and target of one task. `y` holds class indices (into `classes`) or real values."""

    name: str
    task: str
    features: Any
    """A pandas DataFrame: one column per feature, named as in the CSV file or the bundled set."""
    y: np.ndarray
    classes: list | None = None

    @property
    def x(self) -> np.ndarray:
        """The features as a float32 matrix (a dataset without text columns)."""
        return self.features.to_numpy(dtype=np.float32)

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    @property
    def n_outputs(self) -> int:
        """Network outputs: one logit for binary classification and regression, one per class otherwise."""
        return self.n_classes if self.n_classes > 2 else 1


@dataclass
class Fold:
    """One train / valid pair, standardised with the training rows' statistics (`x_mean`, `x_scale`).

    Regression targets are standardised too (`y_mean`, `y_std` map predictions back to the data's units).
    `encoder` turns raw feature columns into the inputs before standardisation (None for in-memory arrays).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float = 0.0
    y_std: float = 1.0
    encoder: Preprocessor | None = None

    def scale_x(self, x: np.ndarray) -> np.ndarray:
        """Features standardised as this fold's were (for a test split or new data)."""
        return ((x - self.x_mean) / self.x_scale).astype(np.float32)

    def scale_y(self, y: np.ndarray) -> np.ndarray:
        """Regression targets standardised as this fold's were; class indices pass through."""
        return y if self.y_train.dtype == np.int64 else ((y - self.y_mean) / self.y_std).astype(np.float32)


def load_dataset(
    dataset: str = "digits",
    data: str | Path | None = None,
    target: str | None = None,
    size: int | None = None,
    task: str | None = None,
    seed: int = 0,
) -> Dataset:
    """A bundled or synthetic set by name, or a CSV file with a `target` column.

    `size` is the number of rows of a synthetic set, or of a stratified subsample of a bundled set.
    """
    if size is not None and int(size) < MIN_ROWS:
        raise DataError(f"--size must be at least {MIN_ROWS}, got {size}")
    if data is not None:
        if target is None:
            raise DataError(f"--data {data} needs --target COLUMN naming the column to predict")
        ds = _load_csv(Path(data), target, task)
    elif target is not None:
        raise DataError("--target applies to a CSV file: pass --data FILE.csv too")
    elif dataset in BUNDLED:
        ds = _load_bundled(dataset)
    elif dataset in SYNTHETIC:
        ds = _make_synthetic(dataset, int(size or SYNTHETIC_ROWS), seed)
    else:
        raise DataError(f"unknown dataset {dataset!r}; available: {', '.join(DATASETS)} (or --data FILE.csv)")
    if size is not None and dataset in BUNDLED and data is None and int(size) < len(ds.y):
        keep = _subsample(ds, int(size), seed)
        ds = Dataset(ds.name, ds.task, ds.features.iloc[keep].reset_index(drop=True), ds.y[keep], ds.classes)
    _check(ds)
    return ds


def _load_bundled(name: str) -> Dataset:
    import sklearn.datasets

    loader, task = BUNDLED[name]
    x, y = getattr(sklearn.datasets, loader)(return_X_y=True, as_frame=True)
    x, y = x.astype(np.float32), y.to_numpy()
    if task == CLASSIFICATION:
        classes, y = np.unique(y, return_inverse=True)
        return Dataset(name, task, x, y.astype(np.int64), classes.tolist())
    return Dataset(name, task, x, y.astype(np.float32))


def _make_synthetic(name: str, rows: int, seed: int) -> Dataset:
    from sklearn.datasets import make_classification, make_friedman1

    if name == "classification":
        x, y = make_classification(rows, n_features=20, n_informative=10, n_classes=3, random_state=seed)
        return Dataset(name, CLASSIFICATION, _frame(x), y.astype(np.int64), [0, 1, 2])
    x, y = make_friedman1(rows, n_features=10, noise=1.0, random_state=seed)
    return Dataset(name, REGRESSION, _frame(x), y.astype(np.float32))


def _frame(x: np.ndarray) -> Any:
    """A synthetic set's features as a DataFrame with columns x0, x1, ..."""
    import pandas as pd

    return pd.DataFrame(x.astype(np.float32), columns=[f"x{i}" for i in range(x.shape[1])])


def read_csv(path: str | Path) -> Any:
    """A CSV file's rows as a DataFrame; one line naming the file and the fix for a missing file, a directory,
    an empty file, one that is not UTF-8 text or not CSV, and a header that repeats a column name."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise DataError(f"data file {str(path)!r} is a directory; --data takes a CSV file")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    with path.open("rb") as file:
        head = file.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # what spreadsheets save as "Unicode text"
        raise DataError(
            f"data file {str(path)!r} is UTF-16 text, not UTF-8; convert it: "
            f"iconv -f utf-16 -t utf-8 {path.name} > utf8-{path.name}"
        )
    if any(byte in _CONTROL for byte in head):
        raise DataError(f"data file {str(path)!r} is a binary file; --data takes a CSV text file")
    try:
        frame = pd.read_csv(path, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {str(path)!r} is empty") from None
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"data file {str(path)!r} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    repeated = _repeated_columns(path)
    if repeated:
        raise DataError(
            f"data file {str(path)!r} repeats column name(s) {', '.join(map(repr, repeated))}; "
            "give each column its own name"
        )
    return frame


def _not_utf8(path: Path) -> str:
    """What is wrong with a CSV file that is not UTF-8 (where, and the command that converts it)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        where = f" (byte 0x{data[exc.start]:02x} on line {line})"
    return (
        f"data file {str(path)!r} is not UTF-8 text{where}; convert it, e.g. from latin-1: "
        f"iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}"
    )


def _repeated_columns(path: Path) -> list[str]:
    """The names that the CSV file's header gives to more than one column (pandas renames them `a.1`)."""
    import csv
    from collections import Counter

    with path.open(newline="", encoding="utf-8-sig") as file:
        header = next((row for row in csv.reader(file) if row), [])
    return [name for name, n in Counter(header).items() if n > 1 and name.strip()]


def _load_csv(path: Path, target: str, task: str | None) -> Dataset:
    import pandas as pd

    frame = read_csv(path)
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in {path.name}; its columns are {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise DataError(f"data file {str(path)!r} has a header but no rows")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"data file {str(path)!r} has no feature column besides the target {target!r}")
    unlabelled = int(frame[target].isna().sum())
    if unlabelled:
        raise DataError(
            f"target column {target!r} of {path.name} has {unlabelled} missing value(s); drop or fill those rows"
        )
    column = frame[target]
    chosen = task or _infer_task(column)
    if chosen not in (CLASSIFICATION, REGRESSION):
        raise DataError(f"unknown task {chosen!r}; use {CLASSIFICATION} or {REGRESSION}")
    if chosen == REGRESSION and not pd.api.types.is_numeric_dtype(column):
        raise DataError(f"target column {target!r} is not numeric, so it cannot be a regression target")
    if log.isEnabledFor(logging.INFO):
        log.info("%s", describe_csv(path.name, frame, target, chosen, forced=task is not None))
    if chosen == CLASSIFICATION:
        classes, y = np.unique(column.to_numpy(), return_inverse=True)
        return Dataset(path.stem, chosen, features, y.astype(np.int64), classes.tolist())
    return Dataset(path.stem, chosen, features, column.to_numpy(dtype=np.float32))


def describe_csv(name: str, frame: Any, target: str, task: str, forced: bool = False) -> str:
    """One line on how a CSV file is read: the task and why, the text columns one-hot encoded, the gaps filled."""
    import pandas as pd

    column = frame[target]
    distinct = column.nunique()
    if forced:
        why = f"{task} (--task)"
    elif pd.api.types.is_bool_dtype(column):
        why = f"true/false values, so {task}"
    elif not pd.api.types.is_numeric_dtype(column):
        why = f"{distinct} text values, so {task}"
    elif task == CLASSIFICATION:
        why = f"{distinct} whole-number values, so {task} (--task regression reads them as numbers)"
    else:
        why = f"{distinct} distinct numbers, so {task} (--task classification reads them as classes)"
    features = frame.drop(columns=[target])
    text = [str(c) for c in features.columns if is_categorical(features[c])]
    gaps = {str(c): int(n) for c, n in features.isna().sum().items() if n}
    numeric_gaps = [f"{c} ({n})" for c, n in gaps.items() if c not in text]
    text_gaps = [f"{c} ({n})" for c, n in gaps.items() if c in text]
    parts = [
        f"{name}: {_count(len(frame), 'row')}, {_count(features.shape[1], 'feature column')}; target {target!r}: {why}"
    ]
    encoded = ", ".join(f"{c} ({_count(features[c].nunique(), 'value')})" for c in text)
    parts.append(f"text columns one-hot encoded: {encoded}" if text else "no text columns")
    if numeric_gaps:
        parts.append(f"missing numbers filled with the training median: {', '.join(numeric_gaps)}")
    if text_gaps:
        parts.append(f"missing text encoded as no category: {', '.join(text_gaps)}")
    if not gaps:
        parts.append("no missing values")
    return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _infer_task(column) -> str:
    """Text, boolean or few-valued integer targets are classes; other numbers are regression."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return CLASSIFICATION
    values = column.to_numpy()
    integral = bool(np.all(np.equal(np.mod(values, 1), 0)))
    return CLASSIFICATION if integral and column.nunique() <= MAX_CLASSES_FOR_NUMERIC_TARGET else REGRESSION


def _check(ds: Dataset) -> None:
    if len(ds.y) < MIN_ROWS:
        raise DataError(
            f"dataset {ds.name!r} has {len(ds.y)} rows; at least {MIN_ROWS} are needed for train/valid/test splits"
        )
    if ds.task == CLASSIFICATION:
        counts = np.bincount(ds.y, minlength=ds.n_classes)
        if ds.n_classes < 2:
            raise DataError(f"the target of {ds.name!r} has a single class ({ds.classes[0]!r}); nothing to classify")
        if counts.min() < 3:
            rare = ds.classes[int(counts.argmin())]
            raise DataError(
                f"class {rare!r} of {ds.name!r} has {counts.min()} row(s); each class needs at least 3 for the splits"
            )
    elif float(np.std(ds.y)) == 0.0:
        raise DataError(f"the target of {ds.name!r} is constant; nothing to predict")


def _subsample(ds: Dataset, size: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    stratify = ds.y if ds.task == CLASSIFICATION else None
    keep, _ = train_test_split(np.arange(len(ds.y)), train_size=size, stratify=stratify, random_state=seed)
    return np.sort(keep)


def make_folds(
    ds: Dataset, folds: int | None = None, seed: int = 0, test_fraction: float = 0.2, valid_fraction: float = 0.2
) -> tuple[list[Fold], np.ndarray, np.ndarray]:
    """Hold out a test split, then one train/valid split (or `folds` folds) of the rest.

    Each fold's `Preprocessor` is fitted on its training rows. Returns the folds and the test
    features/targets, encoded and standardised as the first fold's (the first fold is also where the
    final model of a study is trained).
    """
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    classify = ds.task == CLASSIFICATION
    rows = np.arange(len(ds.y))
    try:
        rest, test = train_test_split(
            rows, test_size=test_fraction, stratify=ds.y if classify else None, random_state=seed
        )
        if folds is None:
            valid_share = valid_fraction / (1.0 - test_fraction)
            train, valid = train_test_split(
                rest, test_size=valid_share, stratify=ds.y[rest] if classify else None, random_state=seed
            )
            pairs = [(train, valid)]
        else:
            if int(folds) < 2:
                raise DataError(f"--folds must be at least 2, got {folds}")
            splitter = (StratifiedKFold if classify else KFold)(int(folds), shuffle=True, random_state=seed)
            pairs = [(rest[a], rest[b]) for a, b in splitter.split(rest, ds.y[rest])]
    except ValueError as exc:  # too few rows of a class for a stratified split, more folds than rows
        raise DataError(f"cannot split {ds.name!r}: {str(exc).splitlines()[0]}") from None
    out = []
    for train, valid in pairs:
        encoder = Preprocessor.fit(ds.features.iloc[train])
        fold = _fold_arrays(encoder.encode(ds.features), ds.y, train, valid, classify)
        fold.encoder = encoder
        out.append(fold)
    x_test = out[0].encoder.encode(ds.features.iloc[test])
    return out, out[0].scale_x(x_test), out[0].scale_y(ds.y[test])


def fold_from_arrays(x: np.ndarray, y: np.ndarray, classify: bool, valid_fraction: float, seed: int) -> Fold:
    """A standardised train/valid fold from in-memory arrays (the scikit-learn estimators' `fit`).

    With `valid_fraction == 0` the valid split is empty and training monitors the training loss.
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    if valid_fraction <= 0:
        return _fold_arrays(x, y, rows, rows[:0], classify)
    try:
        train, valid = train_test_split(
            rows, test_size=valid_fraction, stratify=y if classify else None, random_state=seed
        )
    except ValueError:  # a class too rare to stratify: a plain random split still works
        train, valid = train_test_split(rows, test_size=valid_fraction, random_state=seed)
    return _fold_arrays(x, y, train, valid, classify)


def _fold_arrays(x: np.ndarray, y: np.ndarray, train: np.ndarray, valid: np.ndarray, classify: bool) -> Fold:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[train])  # constant columns get scale 1, not a division by zero
    mean, scale = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
    xs = [((x[rows] - mean) / scale).astype(np.float32) for rows in (train, valid)]
    if classify:
        return Fold(xs[0], y[train].astype(np.int64), xs[1], y[valid].astype(np.int64), mean, scale)
    y_mean, y_std = float(np.mean(y[train])), float(np.std(y[train])) or 1.0
    ys = [((y[rows] - y_mean) / y_std).astype(np.float32) for rows in (train, valid)]
    return Fold(xs[0], ys[0], xs[1], ys[1], mean, scale, y_mean, y_std)
