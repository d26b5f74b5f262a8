"""hpt_auto.optim and hpt_auto.transform: candidates stay in the cube, refinement raises the acquisition,
snapping picks the best choice of a categorical, and the output transform keeps the order of the losses."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hpt.space import Categorical, Float, Space  # noqa: E402
from hpt_auto.acquisition import log_ei  # noqa: E402
from hpt_auto.gp import GaussianProcess  # noqa: E402
from hpt_auto.optim import candidates, refine, snap  # noqa: E402
from hpt_auto.search_space import Encoding  # noqa: E402
from hpt_auto.transform import targets  # noqa: E402

SPACE = Space({"x": Float(0, 1), "y": Float(0, 1), "c": Categorical(["a", "b", "c"])})


def model_on(n: int = 12) -> tuple[Encoding, np.ndarray, np.ndarray, GaussianProcess]:
    encoding = Encoding(SPACE)
    rng = np.random.default_rng(0)
    params = [SPACE.sample(rng) for _ in range(n)]
    x = np.vstack([encoding.encode(p) for p in params])
    loss = [(p["x"] - 0.3) ** 2 + (p["y"] - 0.7) ** 2 + (p["c"] != "b") for p in params]
    z = targets(loss)
    return encoding, x, z, GaussianProcess(x.shape[1]).fit(x, z)


def test_candidates_are_valid_rows_half_of_them_near_the_best_points():
    encoding, x, z, _ = model_on()
    rows = candidates(encoding, np.random.default_rng(1), x, z, 400)
    assert rows.shape == (400, encoding.width)
    assert np.all((rows >= 0) & (rows <= 1))
    assert np.allclose(rows[:, 2:5].sum(1), 1.0)  # one choice of the categorical per row
    best = x[np.argsort(z)[:5]][:, :2]
    near = np.min(np.linalg.norm(rows[200:, None, :2] - best[None], axis=-1), axis=1)
    far = np.min(np.linalg.norm(rows[:200, None, :2] - best[None], axis=-1), axis=1)
    assert np.median(near) < np.median(far)


def test_refinement_raises_the_acquisition_and_stays_in_the_cube():
    encoding, x, z, gp = model_on()
    starts = candidates(encoding, np.random.default_rng(2), x, z, 6)
    best = float(z.min())
    before = log_ei(gp, torch.tensor(starts), best)
    after_rows = refine(gp, best, starts, encoding.numeric_columns)
    after = log_ei(gp, torch.tensor(after_rows), best)
    assert float(after.sum()) > float(before.sum())
    assert np.all((after_rows >= 0) & (after_rows <= 1))
    assert np.array_equal(after_rows[:, 2:], starts[:, 2:])  # categorical columns held


def test_snap_tries_every_choice_of_a_categorical():
    encoding = Encoding(SPACE)

    def prefers_c(rows: np.ndarray) -> np.ndarray:
        return rows[:, 4] - rows[:, 0]

    params, score = snap(encoding, encoding.encode({"x": 0.9, "y": 0.1, "c": "a"}), prefers_c)
    assert params == {"x": 0.9, "y": 0.1, "c": "c"} and score == pytest.approx(0.1)


def test_targets_are_standardised_rank_preserving_and_failures_are_the_worst():
    losses = [1.0, 10.0, 1e4, None, 2.0, 1e8]
    z = targets(losses)
    assert z.mean() == pytest.approx(0.0, abs=1e-12) and z.std() == pytest.approx(1.0)
    assert list(np.argsort(z[[0, 1, 2, 4, 5]])) == [0, 3, 1, 2, 4]
    assert z[3] == z.max() == z[5]
    plain = targets(losses, warp=False)
    assert np.argsort(plain).tolist()[-2:] in ([3, 5], [5, 3])


def test_good_losses_keep_their_resolution_when_a_few_losses_are_orders_of_magnitude_larger():
    # BBOB f6-like: most losses between 7 and 40, a few from 1e4 to 6e5
    losses = [7.5, 8.5, 9.7, 12.2, 14.5, 16.9, 29.2, 43.4, 73.3, 192.0, 3.1e4, 8.9e3, 6.6e5, 5.8e5]
    z = targets(losses)
    assert z[6] - z[0] > 0.3  # 29 against 7.5: the model sees the slope of the good region
    assert np.all(np.diff(z[:10]) > 0)
    unwarped = targets(losses, warp=False)
    assert unwarped[6] - unwarped[0] < 1e-3  # standardising alone makes them one value


def test_a_trust_region_bounds_candidates_and_refinement():
    from hpt_auto.optim import trust_region

    encoding, x, z, gp = model_on()
    cols = encoding.numeric_columns
    box = trust_region(np.array([0.95, 0.5, 1, 0, 0]), cols, 0.2)
    assert np.allclose(box[0], [0.8, 0.4]) and np.allclose(box[1], [1.0, 0.6])  # shifted inside the cube
    rows = candidates(encoding, np.random.default_rng(3), x, z, 200, box)
    assert np.all((rows[:, cols] >= box[0]) & (rows[:, cols] <= box[1]))
    refined = refine(gp, float(z.min()), rows[:4], cols, box=box)
    assert np.all((refined[:, cols] >= box[0] - 1e-12) & (refined[:, cols] <= box[1] + 1e-12))
