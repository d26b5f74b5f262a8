"""hpt_auto.acquisition: log EI against EI computed another way (the closed form s (phi(z) + z Phi(z)) in
80-digit arithmetic, where float64 would cancel or underflow), from mild to far-underflowing improvements."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")
from hpt_auto.acquisition import log_ei, log_h  # noqa: E402


def reference_log_ei(mean: float, std: float, best: float) -> float:
    """log E[max(best - f, 0)], f ~ N(mean, std^2), in 80-digit arithmetic."""
    with mpmath.workdps(80):
        s = mpmath.mpf(std)
        z = (mpmath.mpf(best) - mpmath.mpf(mean)) / s
        return float(mpmath.log(s * (mpmath.npdf(z) + z * mpmath.ncdf(z))))


class Fixed:
    """A model with a given posterior."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.std


@pytest.mark.parametrize("z", [3.0, 1.0, 0.0, -0.5, -1.0, -2.0, -5.0, -12.0, -30.0, -200.0])
def test_log_ei_matches_the_integral_from_mild_to_underflowing_improvements(z):
    std, best = 0.7, 0.2
    mean = best - z * std
    ours = float(log_ei(Fixed(np.array([mean]), np.array([std])), torch.zeros((1, 1)), best)[0])
    assert ours == pytest.approx(reference_log_ei(mean, std, best), rel=1e-6, abs=1e-8)


def test_log_h_agrees_with_the_closed_form_where_it_does_not_underflow():
    from scipy.stats import norm

    z = np.linspace(-6, 4, 41)
    closed = np.log(norm.pdf(z) + z * norm.cdf(z))
    np.testing.assert_allclose(log_h(torch.tensor(z)).numpy(), closed, rtol=1e-8)


def test_log_ei_keeps_a_slope_where_ei_is_zero_in_floating_point():
    z = torch.tensor([-40.0, -39.0], dtype=torch.float64, requires_grad=True)
    values = log_h(z)
    values.sum().backward()
    assert torch.isfinite(values).all() and bool(values[1] > values[0])
    assert torch.isfinite(z.grad).all() and bool((z.grad > 0).all())
    assert math.exp(float(values[0].detach())) == 0.0  # EI itself underflows here
