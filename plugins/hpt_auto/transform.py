"""Losses as the model sees them: failures at the worst loss; then (with `warp`) each loss's gap above the best,
in units of the median gap, through a Yeo-Johnson power transform fitted by maximum likelihood; then
standardised.

The power is fitted on the gaps, not on standardised losses: on a positive scale its family runs from the
identity (well-spread losses) through a log to a bounded 1 - 1 / (1 + gap) (losses over orders of
magnitude), so the good region keeps its resolution whatever the worst losses are. A fitted power above 1
(convex: it would squeeze the best losses together, as on Hartmann-6 where most losses sit near the worst)
is replaced by the identity. Fitted on standardised
losses (as before), a few losses of 1e5 to 1e8 squashed every good loss into one value: on BBOB f6 losses of
7.5 and 30 were 0.01 standard deviations apart, the model saw a plateau and proposed points at random on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def standardise(y: np.ndarray) -> np.ndarray:
    return (y - y.mean()) / (y.std() or 1.0)


def targets(values: Sequence[float | None], warp: bool = True) -> np.ndarray:
    """Standardised (and warped) targets for losses, None marking a failed trial."""
    from scipy.stats import yeojohnson

    worst = max((v for v in values if v is not None), default=0.0)
    y = np.array([worst if v is None else v for v in values], dtype=float)
    if warp:
        gaps = y - y.min()
        positive = gaps[gaps > 0]
        if len(positive):
            scaled = gaps / np.median(positive)
            with np.errstate(all="ignore"):
                warped, power = yeojohnson(scaled)
            if power > 1.0:  # convex: it would squeeze the good end together; the gaps as they are instead
                warped = scaled
            if np.all(np.isfinite(warped)) and np.ptp(warped) > 0:
                y = warped
    return standardise(y)
