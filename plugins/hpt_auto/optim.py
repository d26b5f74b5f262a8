"""Maximising the acquisition over the encoded space: random candidates and perturbations of the best
points seen, the best few refined together by L-BFGS-B on their numeric columns, then snapped to valid
params with each categorical's other choices tried on the winner."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from hpt.space import Params

from hpt_auto.acquisition import Posterior, log_ei
from hpt_auto.search_space import Encoding

Acquisition = Callable[[np.ndarray], np.ndarray]


Box = tuple[np.ndarray, np.ndarray]
"""Lower and upper bounds of the numeric columns (a trust region inside the unit cube)."""


def trust_region(centre: np.ndarray, cols: np.ndarray, side: float) -> Box:
    """The box of the given side around the numeric columns of `centre`, shifted to lie inside the cube."""
    low = np.clip(centre[cols] - side / 2, 0.0, max(0.0, 1.0 - side))
    return low, np.minimum(low + side, 1.0)


def candidates(
    encoding: Encoding, rng: np.random.Generator, x: np.ndarray, z: np.ndarray, n: int, box: Box | None = None
) -> np.ndarray:
    """`n` candidate rows: half uniform, half perturbations of the five best points seen (Gaussian steps of
    0.01, 0.05 or 0.2 of the cube on the numeric columns; each categorical resampled with probability
    1 / parameters). With a trust region `box`, every candidate is the best point with its numeric columns
    drawn in the box (uniformly, or as those perturbations) and its categoricals resampled the same way."""
    n_local = n // 2
    cols = encoding.numeric_columns
    top = x[np.argsort(z)[: min(5, len(z))]]
    if box is None:
        uniform = encoding.from_units(rng.random((n - n_local, len(encoding.names))))
    else:
        uniform = np.repeat(top[:1], n - n_local, axis=0)
        uniform[:, cols] = box[0] + (box[1] - box[0]) * rng.random((n - n_local, len(cols)))
        top = top[:1]
    local = top[rng.integers(len(top), size=n_local)].copy()
    scale = rng.choice([0.01, 0.05, 0.2], size=(n_local, 1))
    if box is not None:
        scale = scale * (box[1] - box[0])
    low, high = box if box is not None else (0.0, 1.0)
    local[:, cols] = np.clip(local[:, cols] + scale * rng.normal(size=(n_local, len(cols))), low, high)
    rows = np.vstack([uniform, local])
    changed = slice(n - n_local, n) if box is None else slice(0, n)
    for name in encoding.categoricals:
        where, k = encoding.slices[name], len(encoding.space[name].choices)
        part = rows[changed]
        flip = rng.random(len(part)) < 1.0 / len(encoding.names)
        part[flip, where] = 0.0
        part[np.flatnonzero(flip), where.start + rng.integers(k, size=int(flip.sum()))] = 1.0
        rows[changed] = part
    return rows


def refine(
    model: Posterior, best: float, rows: np.ndarray, cols: np.ndarray, maxiter: int = 50, box: Box | None = None
) -> np.ndarray:
    """L-BFGS-B on the numeric columns `cols` of every row at once (their log EIs summed: each row's gradient
    is its own), other columns held, within the unit cube or the trust region `box`; one batched model call
    per step instead of one per row."""
    from scipy.optimize import minimize

    if len(cols) == 0:
        return rows
    base = torch.as_tensor(rows, dtype=torch.float64)

    def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(u.reshape(len(rows), len(cols)), dtype=torch.float64, requires_grad=True)
        full = base.clone()
        full[:, cols] = t
        value = -log_ei(model, full, best).sum()
        value.backward()
        return float(value.detach()), np.nan_to_num(t.grad.numpy().ravel())

    low, high = box if box is not None else (np.zeros(len(cols)), np.ones(len(cols)))
    bounds = list(zip(np.tile(low, len(rows)), np.tile(high, len(rows)), strict=True))
    start = np.clip(rows[:, cols], low, high).ravel()
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter})
    out = rows.copy()
    if np.all(np.isfinite(result.x)):
        out[:, cols] = result.x.reshape(len(rows), len(cols))
    return out


def snap(encoding: Encoding, row: np.ndarray, acquisition: Acquisition) -> tuple[Params, float]:
    """Valid params for a refined row and their acquisition value, each categorical's other choices tried."""
    space = encoding.space
    params = encoding.decode(row)
    best_score = float(acquisition(encoding.encode(params)[None])[0])
    for name in encoding.categoricals:
        if name not in params:
            continue
        options = [space.decode(encoding.params_units(dict(params, **{name: c}))) for c in space[name].choices]
        scores = acquisition(np.vstack([encoding.encode(p) for p in options]))
        i = int(np.argmax(scores))
        if scores[i] > best_score:
            params, best_score = options[i], float(scores[i])
    return params, best_score
