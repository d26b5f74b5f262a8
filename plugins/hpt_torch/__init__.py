"""hpt's PyTorch plugin: the `mlp` backend (a multilayer perceptron on tabular data), its
scikit-learn estimators (`from hpt_torch import MLPClassifier, MLPRegressor`) and the `hpt lr-find` command.

Importing this package is cheap; torch loads with `hpt_torch.backend`, `.estimators` or `.training`, or
when an estimator is first taken from the package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MLPClassifier", "MLPRegressor"]


def __getattr__(name: str) -> Any:
    """`MLPClassifier` and `MLPRegressor`, imported from `hpt_torch.estimators` (and torch) on first use."""
    if name in __all__:
        from hpt_torch import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
