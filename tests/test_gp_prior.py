"""hpt_auto.prior: the penalties are negative log densities, checked against scipy's distributions by
differences (the constants drop out)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hpt_auto.prior import dim_scaled_centre, gamma_penalty, lengthscale_penalty  # noqa: E402
from scipy import stats  # noqa: E402


def differences(values: np.ndarray) -> np.ndarray:
    return values - values[0]


def test_gamma_penalty_is_minus_the_gamma_log_density_up_to_a_constant():
    values = np.array([0.01, 0.1, 0.5, 2.0, 7.0])
    t = torch.tensor(values, dtype=torch.float64)
    ours = gamma_penalty(torch.log(t), t, 2.0, 1.0).numpy()
    theirs = -stats.gamma(a=2.0, scale=1.0).logpdf(values)
    np.testing.assert_allclose(differences(ours), differences(theirs), rtol=1e-9, atol=1e-12)
    noise = gamma_penalty(torch.log(t), t, 1.1, 30.0).numpy()
    np.testing.assert_allclose(differences(noise), differences(-stats.gamma(a=1.1, scale=1 / 30).logpdf(values)))


def test_default_length_scale_prior_peaks_at_the_cube_width():
    log_ls = torch.linspace(-3, 3, 601, dtype=torch.float64).unsqueeze(-1)
    penalty = lengthscale_penalty(log_ls)
    # -(0.1 / s + 0.1 s) with s = 1 / l^2 is largest at s = 1
    assert float(log_ls[int(torch.argmin(penalty))]) == pytest.approx(0.0, abs=0.01)
    s = math.exp(-2 * 0.7)
    assert float(lengthscale_penalty(torch.tensor([0.7], dtype=torch.float64))) == pytest.approx(0.1 / s + 0.1 * s)


def test_dimension_scaled_prior_is_a_log_normal_centred_on_sqrt2_plus_half_log_dim():
    for dim in (1, 4, 20):
        centre = dim_scaled_centre(dim)
        assert centre == pytest.approx(math.sqrt(2) + 0.5 * math.log(dim))
        values = np.array([centre - 1, centre, centre + 2.5])
        ours = lengthscale_penalty(torch.tensor(values)[:, None].expand(-1, dim).contiguous(), dim_scaled=True)
        theirs = -dim * stats.norm(centre, math.sqrt(3)).logpdf(values)
        np.testing.assert_allclose(differences(ours.numpy()), differences(theirs), rtol=1e-9)
