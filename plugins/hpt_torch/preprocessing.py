"""Raw feature columns to the network's numeric inputs: missing numbers imputed, text columns one-hot encoded.

Fitted on a training split only (`Preprocessor.fit`), then applied unchanged to the validation and
test rows and to new data at prediction time, so a logged model takes the same raw columns as its CSV.

This module needs only numpy and pandas (no hpt import): a logged model carries it by value, so
loading the model needs no hpt installation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def is_categorical(column: Any) -> bool:
    """Text (object, string, category) columns are one-hot encoded; numbers and booleans are used as they are."""
    import pandas as pd

    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


@dataclass
class Preprocessor:
    """The encoding learnt from the training rows.

    `fill`: each numeric column's training median, which replaces its missing values (0 when the
    training rows hold none). `categories`: each text column's values seen in the training rows, in
    sorted order; a value never seen in training and a missing value are encoded as no category
    (all of that column's one-hot inputs are 0).
    """

    columns: list[str]
    fill: dict[str, float] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: Any) -> Preprocessor:
        """Learn the medians and categories of the training rows `frame` (a pandas DataFrame of features)."""
        fill, categories = {}, {}
        for name in frame.columns:
            column = frame[name]
            if is_categorical(column):
                categories[str(name)] = sorted({str(v) for v in column.dropna()})
            else:
                median = column.astype(float).median()
                fill[str(name)] = 0.0 if np.isnan(median) else float(median)
        return cls([str(c) for c in frame.columns], fill, categories)

    @property
    def input_names(self) -> list[str]:
        """Names of the encoded inputs: a numeric column's own name, `column=value` for each category."""
        out: list[str] = []
        for name in self.columns:
            out += [f"{name}={value}" for value in self.categories[name]] if name in self.categories else [name]
        return out

    def missing_columns(self, columns: Sequence[Any]) -> list[str]:
        """The feature columns this encoding needs that `columns` lacks."""
        have = {str(c) for c in columns}
        return [name for name in self.columns if name not in have]

    def encode(self, frame: Any) -> np.ndarray:
        """The encoded float32 matrix of `frame` (the raw feature columns, by name; extra columns are ignored)."""
        missing = self.missing_columns(frame.columns)
        if missing:
            raise ValueError(f"missing feature column(s): {', '.join(missing)} (expected {', '.join(self.columns)})")
        frame = frame.rename(columns=str)
        parts: list[np.ndarray] = []
        for name in self.columns:
            column = frame[name]
            if name in self.categories:
                known = np.array(self.categories[name], dtype=object)
                values = column.astype(object).where(column.notna(), None).to_numpy()
                text = np.array([None if v is None else str(v) for v in values], dtype=object)
                parts.append((text[:, None] == known[None, :]).astype(np.float32))
            else:
                parts.append(column.astype(float).fillna(self.fill[name]).to_numpy(dtype=np.float32)[:, None])
        return np.hstack(parts) if parts else np.zeros((len(frame), 0), dtype=np.float32)
