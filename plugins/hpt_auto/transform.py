"""Losses as the model sees them: failures at the worst loss, standardised, then (with `warp`) a Yeo-Johnson
power transform fitted by maximum likelihood (as HEBO does): close to the identity on well-spread losses,
close to a log where a few huge losses (a diverged network) would flatten the model around the good region."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def standardise(y: np.ndarray) -> np.ndarray:
    return (y - y.mean()) / (y.std() or 1.0)


def targets(values: Sequence[float | None], warp: bool = True) -> np.ndarray:
    """Standardised (and warped) targets for losses, None marking a failed trial."""
    from scipy.stats import yeojohnson

    worst = max((v for v in values if v is not None), default=0.0)
    y = standardise(np.array([worst if v is None else v for v in values], dtype=float))
    if warp and np.ptp(y) > 0:
        with np.errstate(all="ignore"):
            warped = yeojohnson(y)[0]
        if np.all(np.isfinite(warped)):
            y = warped
    return standardise(y)
