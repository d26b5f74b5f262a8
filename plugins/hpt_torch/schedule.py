"""What each epoch of a member draws and uses, as functions of its seed and epoch: its learning-rate factor
(warm-up, then the schedule) and its order of the training rows. Pure tensor expressions over all members, so an
epoch's host work does not depend on how many there are, and nothing here needs checkpointing."""

from __future__ import annotations

import math

import numpy as np
import torch

EXPONENTIAL_FLOOR = 0.01
"""The exponential schedule decays the rate to this fraction of its start over `max_epochs`."""
STEP_FACTOR, STEP_COUNT = 0.5, 4
"""The step schedule halves the rate at each quarter of `max_epochs`."""
COSINE_FLOOR = 0.01
SCHEDULE_CODES = {"constant": 0, "exponential": 1, "step": 2, "cosine": 3}


def lr_factors(
    schedule: torch.Tensor, warmup: torch.Tensor, horizon: torch.Tensor, epoch: torch.Tensor
) -> torch.Tensor:
    """Multipliers of the base rates at each member's epoch (float64 tensors, one entry per member): linear
    warm-up over `warmup` epochs, then the schedule (`SCHEDULE_CODES`) over `horizon` (`max_epochs`) epochs,
    whatever budget a member trains for, so a run continued to a larger budget follows the same rates."""
    epoch = epoch.double()
    warm = torch.where(epoch < warmup, (epoch + 1) / (warmup + 1), 1.0)
    progress = (epoch / horizon.clamp_min(1)).clamp_max(1.0)
    exponential = EXPONENTIAL_FLOOR**progress
    step = STEP_FACTOR ** torch.clamp_max(torch.floor(progress * STEP_COUNT), STEP_COUNT - 1)
    cosine = COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + torch.cos(math.pi * progress))
    decay = torch.where(
        schedule == 1, exponential, torch.where(schedule == 2, step, torch.where(schedule == 3, cosine, 1.0))
    )
    return warm * decay


class LRFactor:
    """`lr_factors` of one member as a function of the epoch (the LR range test, the tests' reference)."""

    def __init__(self, schedule: str, warmup_epochs: int, horizon: int) -> None:
        self.args = [
            torch.tensor([float(v)], dtype=torch.float64) for v in (SCHEDULE_CODES[schedule], warmup_epochs, horizon)
        ]

    def __call__(self, epoch: int) -> float:
        return float(lr_factors(*self.args, torch.tensor([epoch])))


def _int64(value: int) -> int:
    """A 64-bit constant as torch's signed int64."""
    return value - (1 << 64) if value >= 1 << 63 else value


_MIX = (_int64(0xBF58476D1CE4E5B9), _int64(0x94D049BB133111EB), _int64(0x9E3779B97F4A7C15))


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (wrapping multiplication, logical shifts)."""
    z = z ^ ((z >> 30) & ((1 << 34) - 1))
    z = z * _MIX[0]
    z = z ^ ((z >> 27) & ((1 << 37) - 1))
    z = z * _MIX[1]
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def epoch_orders(seeds: torch.Tensor, epochs: torch.Tensor, sizes: torch.Tensor, n: int) -> torch.Tensor:
    """Each member's order of its training rows at its epoch (`[K, n]`, positions `0..size-1`, then its padding
    positions `size..n-1`): the rows sorted by a hash of (seed, epoch, row). A pure function of those, the same
    on every device and in any stack, with no generator state to keep or checkpoint."""
    base = _mix(_mix(seeds.long() * _MIX[2]) + epochs.long()).unsqueeze(1)
    rows = torch.arange(n, device=seeds.device)
    keys = _mix(base + rows * _MIX[2])
    keys = torch.where(rows < sizes.unsqueeze(1), keys, torch.iinfo(torch.int64).max)
    return torch.argsort(keys, dim=1, stable=True)


def epoch_seed(dropout_seed: int, epoch: int) -> int:
    """The dropout generator's seed for an epoch: the same epoch draws the same masks however it was reached."""
    return int(np.random.SeedSequence([abs(int(dropout_seed)), int(epoch)]).generate_state(1)[0])
