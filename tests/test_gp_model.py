"""hpt_auto.gp: the Matern 5/2 kernel against its formula, the posterior against the textbook GP equations,
and a MAP fit on data drawn from a known function."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hpt_auto.gp import GaussianProcess, matern52  # noqa: E402


def direct_matern52(a: np.ndarray, b: np.ndarray, ls: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, u in enumerate(a):
        for j, v in enumerate(b):
            r = math.sqrt(float(np.sum(((u - v) / ls) ** 2)))
            out[i, j] = (1 + math.sqrt(5) * r + 5 * r * r / 3) * math.exp(-math.sqrt(5) * r)
    return out


def test_kernel_matches_the_matern_formula_with_one_length_scale_per_input():
    rng = np.random.default_rng(0)
    a, b, ls = rng.random((5, 3)), rng.random((4, 3)), np.array([0.2, 1.0, 3.0])
    got = matern52(torch.tensor(a), torch.tensor(b), torch.tensor(ls)).numpy()
    np.testing.assert_allclose(got, direct_matern52(a, b, ls), rtol=1e-6, atol=1e-9)
    assert np.allclose(np.diag(matern52(torch.tensor(a), torch.tensor(a), torch.tensor(ls)).numpy()), 1.0)


def test_kernel_gradient_is_finite_at_zero_distance():
    x = torch.zeros((2, 2), dtype=torch.float64, requires_grad=True)
    matern52(x, x, torch.ones(2, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_posterior_matches_the_textbook_equations_for_held_hyperparameters():
    rng = np.random.default_rng(1)
    x, y, xs = rng.random((8, 2)), rng.normal(size=8), rng.random((5, 2))
    gp = GaussianProcess(2)
    gp.theta = np.array([math.log(0.3), math.log(0.7), math.log(2.0), math.log(0.05)])
    gp.condition_on(x, y)
    mean, std = (t.numpy() for t in gp.posterior(torch.tensor(xs)))

    ls, amp, noise = np.array([0.3, 0.7]), 2.0, 0.05 + 1e-6
    k = amp * direct_matern52(x, x, ls) + noise * np.eye(8)
    ks = amp * direct_matern52(xs, x, ls)
    np.testing.assert_allclose(mean, ks @ np.linalg.solve(k, y), rtol=1e-7)
    var = amp - np.einsum("ij,ji->i", ks, np.linalg.solve(k, ks.T))
    np.testing.assert_allclose(std, np.sqrt(var), rtol=1e-6)


def test_a_fitted_model_interpolates_a_smooth_function_and_reverts_to_its_prior_far_away():
    f = lambda x: np.sin(6 * x[:, 0]) + 0.5 * x[:, 1]  # noqa: E731
    x = np.random.default_rng(2).random((30, 2))
    y = f(x)
    y = (y - y.mean()) / y.std()
    gp = GaussianProcess(2).fit(x, y)
    mean, std = gp.posterior(torch.tensor(x))
    np.testing.assert_allclose(mean.numpy(), y, atol=0.05)
    assert float(std.max()) < 0.1
    test = np.random.default_rng(3).random((50, 2))
    truth = (f(test) - f(x).mean()) / f(x).std()
    prediction = gp.posterior(torch.tensor(test))[0].numpy()
    assert np.corrcoef(prediction, truth)[0, 1] > 0.99
    # the second input matters less (a longer length scale) than the first
    assert gp.theta[1] > gp.theta[0]
    far_std = gp.posterior(torch.tensor([[50.0, 50.0]], dtype=torch.float64))[1]
    assert float(far_std) == pytest.approx(math.sqrt(float(gp.amplitude)), rel=1e-6)


def test_the_fit_is_a_function_of_the_data_alone():
    x = np.random.default_rng(4).random((12, 3))
    y = np.random.default_rng(5).normal(size=12)
    first = GaussianProcess(3).fit(x, y).theta
    model = GaussianProcess(3).fit(x[:6], y[:6])
    np.testing.assert_array_equal(model.fit(x, y).theta, first)


def test_the_negative_log_posterior_is_the_marginal_likelihood_plus_the_prior():
    from hpt_auto.prior import penalty

    x = np.random.default_rng(6).random((6, 2))
    y = np.random.default_rng(7).normal(size=6)
    gp = GaussianProcess(2)
    theta = torch.tensor([0.1, -0.4, 0.3, math.log(0.01)], dtype=torch.float64)
    k = math.exp(0.3) * direct_matern52(x, x, np.exp([0.1, -0.4])) + (0.01 + 1e-6) * np.eye(6)
    nll = 0.5 * y @ np.linalg.solve(k, y) + 0.5 * np.linalg.slogdet(k)[1]
    expected = nll + float(penalty(theta[:2], theta[2], torch.tensor(0.01 + 1e-6, dtype=torch.float64), False))
    assert float(gp.neg_log_posterior(theta, torch.tensor(x), torch.tensor(y))) == pytest.approx(expected, rel=1e-9)
