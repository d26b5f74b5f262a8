"""Priors on the GP's hyperparameters, as negative log densities (up to a constant) of their logs' values.

- Length scales: Optuna 5 GPSampler's, log p(s) = -(0.1 / s + 0.1 s) on each inverse squared length scale
  s = 1 / l^2: most mass near l = 1, the unit cube's width. `dim_scaled` swaps it for a log-normal on
  log l centred on sqrt(2) + log(dim) / 2, standard deviation sqrt(3) (Hvarfner, Hellsten & Nardi,
  "Vanilla Bayesian optimization performs great in high dimensions", ICML 2024).
- Amplitude: Gamma(2, 1). Noise variance: Gamma(1.1, 30) (Optuna GPSampler's).
"""

from __future__ import annotations

import math

import torch


def dim_scaled_centre(dim: int) -> float:
    """The log length scale the dimension-scaled prior is centred on."""
    return math.sqrt(2.0) + 0.5 * math.log(dim)


def lengthscale_penalty(log_ls: torch.Tensor, dim_scaled: bool = False) -> torch.Tensor:
    """-log prior of the log length scales, summed over inputs."""
    if dim_scaled:
        centre = dim_scaled_centre(log_ls.shape[-1])
        return 0.5 * ((log_ls - centre) / math.sqrt(3.0)).pow(2).sum(-1)
    inverse_sq = torch.exp(-2 * log_ls)
    return (0.1 / inverse_sq + 0.1 * inverse_sq).sum(-1)


def gamma_penalty(log_value: torch.Tensor, value: torch.Tensor, shape: float, rate: float) -> torch.Tensor:
    """-log Gamma(shape, rate) density of `value` (given with its log), up to a constant."""
    return -((shape - 1.0) * log_value - rate * value)


def penalty(log_ls: torch.Tensor, log_amplitude: torch.Tensor, noise: torch.Tensor, dim_scaled: bool) -> torch.Tensor:
    """-log prior of every hyperparameter: length scales, amplitude Gamma(2, 1), noise Gamma(1.1, 30)."""
    return (
        lengthscale_penalty(log_ls, dim_scaled)
        + gamma_penalty(log_amplitude, torch.exp(log_amplitude), 2.0, 1.0)
        + gamma_penalty(torch.log(noise), noise, 1.1, 30.0)
    )
