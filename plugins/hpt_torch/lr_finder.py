"""The learning-rate range test (Smith, 2017): raise the rate exponentially batch after batch,
watch the smoothed training loss, and suggest a tenth of the rate where the loss stops falling. The network
trains as every other does here: a stack of one of the engine (`hpt_torch.engine`), one step at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hpt.errors import HptError

from hpt_torch.engine import DeviceData, Member, Stack
from hpt_torch.schedule import epoch_orders

SMOOTHING = 0.98
"""Weight of the running loss in the exponential moving average (bias-corrected)."""
DIVERGENCE_FACTOR = 4.0
"""The test stops once the smoothed loss exceeds this multiple of its minimum."""


@dataclass
class LRFinding:
    """Rates tried, their smoothed losses, the rate at the loss minimum and the suggested rate."""

    learning_rates: list[float]
    losses: list[float]
    min_loss_rate: float
    suggestion: float

    def plot(self, path: str | Path) -> Path:
        """Save loss against rate (log axis) with the suggestion marked, as an image."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.learning_rates, self.losses)
        ax.axvline(self.suggestion, color="tab:green", linestyle="--", label=f"suggested {self.suggestion:.2g}")
        ax.axvline(self.min_loss_rate, color="tab:red", linestyle=":", label=f"loss minimum {self.min_loss_rate:.2g}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="LR range test")
        ax.set_ylim(top=min(max(self.losses), 1.5 * self.losses[0]) * 1.05)  # keep the divergence from flattening it
        ax.legend()
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
        plt.close(fig)
        return path


def lr_range_test(
    params: dict[str, Any],
    data: DeviceData,
    *,
    seed: int = 0,
    start: float = 1e-5,
    end: float = 10.0,
    steps: int = 200,
) -> LRFinding:
    """Train `params`' network (a stack of one) on the first fold of `data` for up to `steps` batches while the
    rate grows from `start` to `end`; the suggestion is a tenth of the rate at the smoothed loss's minimum."""
    if not 0 < start < end or steps < 2:
        raise HptError(
            f"--start/--end/--steps: need 0 < start < end and steps >= 2, got start={start}, end={end}, steps={steps}"
        )
    params = {**params, "lr_schedule": "constant", "warmup_epochs": 0}
    stack = Stack([Member(params, 0, seed, 1)], data, dropout_seed=seed)
    n, batch = data.train_sizes[0], stack.batch[0]
    one = torch.tensor([seed], device=stack.device)

    def order(epoch: int) -> torch.Tensor:
        return epoch_orders(one, torch.tensor([epoch], device=stack.device), torch.tensor([n], device=stack.device), n)[
            0
        ]

    rates, losses = [], []
    rows, epoch, position, average, best = order(0), 0, 0, 0.0, math.inf
    for step in range(steps):
        rate = start * (end / start) ** (step / (steps - 1))
        if position + batch > n:
            epoch, position = epoch + 1, 0
            rows = order(epoch)
        loss = float(stack.train_batch(rows[position : position + batch], rate))
        position += batch
        if not math.isfinite(loss):
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        rates.append(rate)
        losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > DIVERGENCE_FACTOR * best:
            break
    if not losses:
        raise HptError(
            f"the LR range test found no usable rate: the loss was not finite even at the starting rate {start:g}"
        )
    min_rate = rates[losses.index(min(losses))]
    return LRFinding(rates, losses, min_rate, max(start, min_rate / 10))
