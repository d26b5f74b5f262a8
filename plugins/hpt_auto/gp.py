"""The Gaussian-process model, in PyTorch (float64): a Matern 5/2 kernel with one length scale per input
(ARD), an amplitude and a noise term, on inputs in the unit cube and standardised targets.

Hyperparameters are fitted by maximum a posteriori (priors in `hpt_auto.prior`) with L-BFGS-B on their
logs, gradients by autograd, each fit started from the prior's centre: the model is a function of the data
alone, so a resumed study fits the model it would have had.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from hpt_auto.prior import dim_scaled_centre, penalty

_SQRT5 = math.sqrt(5.0)
NOISE_FLOOR = 1e-6
LOG_LS_BOUNDS = (math.log(1e-3), math.log(1e3))


def matern52(x1: torch.Tensor, x2: torch.Tensor, lengthscales: torch.Tensor) -> torch.Tensor:
    """Matern 5/2 correlation between the rows of x1 and x2: (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r)."""
    # from squared distances: cdist's gradient at zero distance is NaN, the kernel is smooth there
    d2 = ((x1 / lengthscales).unsqueeze(-2) - (x2 / lengthscales).unsqueeze(-3)).pow(2).sum(-1)
    r = torch.sqrt(d2 + 1e-12)
    return (1 + _SQRT5 * r + 5.0 / 3.0 * d2) * torch.exp(-_SQRT5 * r)


class GaussianProcess:
    """A GP on standardised targets: `fit(x, y)` (or set `theta` and `condition_on(x, y)`), then `posterior(x)`.

    `theta` holds the log length scales, the log amplitude and the log noise variance.
    """

    def __init__(self, dim: int, dim_scaled: bool = False) -> None:
        self.dim = dim
        self.dim_scaled = dim_scaled
        start = dim_scaled_centre(dim) if dim_scaled else 0.0
        self.start = np.concatenate([np.full(dim, start), [0.0, math.log(1e-3)]])
        self.theta = self.start
        self.bounds = [LOG_LS_BOUNDS] * dim + [(math.log(1e-2), math.log(1e2)), (-16.0, 0.0)]

    def _unpack(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ls = torch.exp(theta[: self.dim])
        amplitude = torch.exp(theta[self.dim])
        noise = torch.exp(theta[self.dim + 1]) + NOISE_FLOOR
        return ls, amplitude, noise

    def neg_log_posterior(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-log marginal likelihood - log prior (up to constants) of hyperparameters `theta` on data (x, y)."""
        ls, amplitude, noise = self._unpack(theta)
        k = amplitude * matern52(x, x, ls) + noise * torch.eye(len(x), dtype=x.dtype)
        chol = torch.linalg.cholesky(k)
        alpha = torch.cholesky_solve(y.unsqueeze(-1), chol).squeeze(-1)
        nll = 0.5 * y @ alpha + torch.log(torch.diagonal(chol)).sum()
        return nll + penalty(theta[: self.dim], theta[self.dim], noise, self.dim_scaled)

    def fit(self, x: np.ndarray, y: np.ndarray, maxiter: int = 100) -> GaussianProcess:
        """Fit the hyperparameters (MAP) from the prior's centre, then condition on (x, y)."""
        xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
            try:
                loss = self.neg_log_posterior(t, xt, yt)
            except torch.linalg.LinAlgError:
                return 1e10, np.zeros_like(theta)
            loss.backward()
            return float(loss.detach()), np.nan_to_num(t.grad.numpy())

        bounds = self.bounds
        start = np.clip(self.start, [b[0] for b in bounds], [b[1] for b in bounds])
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter})
        if np.all(np.isfinite(result.x)) and result.fun < 1e10:
            self.theta = result.x
        self._condition(xt, yt)
        return self

    def _condition(self, x: torch.Tensor, y: torch.Tensor) -> None:
        theta = torch.as_tensor(self.theta, dtype=torch.float64)
        self.ls, self.amplitude, self.noise = self._unpack(theta)
        k = self.amplitude * matern52(x, x, self.ls) + self.noise * torch.eye(len(x), dtype=x.dtype)
        jitter = 0.0
        while True:
            try:
                self.chol = torch.linalg.cholesky(k + jitter * torch.eye(len(x), dtype=x.dtype))
                break
            except torch.linalg.LinAlgError:
                jitter = max(jitter * 10, 1e-8)
        self.x = x
        self.alpha = torch.cholesky_solve(y.unsqueeze(-1), self.chol).squeeze(-1)

    def condition_on(self, x: np.ndarray, y: np.ndarray) -> GaussianProcess:
        """Condition on data with the hyperparameters held (pending points told a lie, a held kernel)."""
        self._condition(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64))
        return self

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the latent function at the rows of `x` (n, dim)."""
        ks = self.amplitude * matern52(x, self.x, self.ls)
        mean = ks @ self.alpha
        v = torch.cholesky_solve(ks.T, self.chol)
        var = (self.amplitude - (ks * v.T).sum(-1)).clamp_min(1e-12)
        return mean, var.sqrt()
