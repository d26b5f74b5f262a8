"""Log expected improvement (Ament et al., "Unexpected improvements to expected improvement for Bayesian
optimization", NeurIPS 2023), computed stably where EI underflows, so an optimiser still sees a slope far
from the incumbent."""

from __future__ import annotations

import math
from typing import Protocol

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class Posterior(Protocol):
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


def log_h(z: torch.Tensor) -> torch.Tensor:
    """log(phi(z) + z Phi(z)): EI / std at standardised improvement z, accurate for very negative z."""
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    direct = torch.log((torch.exp(log_phi) + z * torch.special.ndtr(z)).clamp_min(1e-300))
    zneg = z.clamp_max(-1.0)
    mills = torch.special.erfcx(-zneg / math.sqrt(2.0)) * math.sqrt(math.pi / 2.0)  # Phi(z) / phi(z)
    tail = log_phi + torch.log1p((zneg * mills).clamp_min(-1 + 1e-15))
    return torch.where(z > -1.0, direct, tail)


def log_ei(model: Posterior, x: torch.Tensor, best: float) -> torch.Tensor:
    """Log expected improvement below `best` (targets minimised) at the rows of `x`."""
    mean, std = model.posterior(x)
    return log_h((best - mean) / std) + torch.log(std)
