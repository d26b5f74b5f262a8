"""Optimiser steps over a stacked population: one row of a `[K, P]` tensor per member, each member with
its own learning rate, momentum and weight decay.

The update rules are torch.optim's (SGD with momentum / Nesterov, Adam, AdamW, RMSprop, Adagrad with
their default betas, alpha and eps), written as a few tensor operations on the whole stack, because
torch.optim applies one rate per parameter group and a group per member would cost K times the
Python overhead the stack exists to avoid. The state tensors have torch.optim's names, so a member's
rows convert to and from its own `torch.optim` state (checkpoints stay interchangeable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

FAMILIES = {
    "sgd": "sgd",
    "momentum": "sgd",
    "nesterov": "sgd",
    "adam": "adam",
    "adamw": "adam",
    "rmsprop": "rmsprop",
    "adagrad": "adagrad",
}
"""Optimisers that share an update rule (and so a stack): plain SGD is momentum 0, AdamW is decoupled decay."""
STATE_NAMES = {
    "sgd": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq"),
    "rmsprop": ("square_avg",),
    "adagrad": ("sum",),
}
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10


class StackedOptimizer:
    """A torch.optim-equivalent step for K members at once.

    `weight_mask` is 1 on weight entries and 0 on biases (L1 and L2 apply to weights only, as in the
    single-model path); `members` are the members' resolved params, in stack order.
    """

    def __init__(
        self,
        family: str,
        members: Sequence[dict[str, Any]],
        weight_mask: torch.Tensor,
        states: dict[str, torch.Tensor],
        steps: torch.Tensor,
    ) -> None:
        device = weight_mask.device
        self.family = family
        self.states = states
        self.steps = steps.to(device=device, dtype=torch.float64).reshape(-1, 1)

        def column(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device).reshape(-1, 1)

        self.momentum = column([p["momentum"] if p["optimizer"] in ("momentum", "nesterov") else 0.0 for p in members])
        self.nesterov = column([p["optimizer"] == "nesterov" for p in members]).bool()
        l2 = column([p["l2"] for p in members])
        decoupled = column([p["optimizer"] == "adamw" for p in members])
        self.coupled_decay = l2 * (1 - decoupled) * weight_mask if bool((l2 * (1 - decoupled)).any()) else None
        self.decoupled_decay = l2 * decoupled * weight_mask if bool((l2 * decoupled).any()) else None
        l1 = column([p["l1"] for p in members])
        self.l1 = l1 * weight_mask if bool(l1.any()) else None

    def keep(self, rows: torch.Tensor) -> None:
        """Drop the members not in `rows` (those that finished) from every per-member tensor."""
        for name in ("momentum", "nesterov", "coupled_decay", "decoupled_decay", "l1", "steps"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[rows])
        self.states = {name: value[rows] for name, value in self.states.items()}

    @torch.no_grad()
    def step(self, flat: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor) -> None:
        """Update `flat` in place from `grad` (the data loss's gradient, overwritten) with per-member rates
        `lr` (`[K, 1]`). Every operation works in place on the stack or on one scratch tensor: on a CPU a
        fresh `[K, P]` result per operation costs more than the arithmetic."""
        scratch = torch.empty_like(flat)
        if self.l1 is not None:  # the gradient of l1 * sum|w|, as autograd gives it (sign(0) = 0)
            grad.addcmul_(self.l1, torch.sign(flat, out=scratch))
        if self.decoupled_decay is not None:  # AdamW: decay the weights before the step
            flat.mul_(torch.mul(self.decoupled_decay, lr, out=scratch).neg_().add_(1))
        if self.coupled_decay is not None:
            grad.addcmul_(self.coupled_decay, flat)
        self.steps += 1
        getattr(self, f"_{self.family}")(flat, grad, lr, scratch)

    def _sgd(self, flat: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor, scratch: torch.Tensor) -> None:
        buf = self.states["momentum_buffer"]
        buf.mul_(self.momentum).add_(grad)
        if bool(self.nesterov.any()):
            torch.addcmul(grad, self.momentum, buf, out=scratch)
            update = torch.where(self.nesterov, scratch, buf, out=scratch)
        else:
            update = scratch.copy_(buf)
        flat.sub_(update.mul_(lr))

    def _adam(self, flat: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor, scratch: torch.Tensor) -> None:
        beta1, beta2 = ADAM_BETAS
        exp_avg, exp_avg_sq = self.states["exp_avg"], self.states["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = (lr.double() / (1 - beta1**self.steps)).float()
        correction2_sqrt = (1 - beta2**self.steps).sqrt().float()
        denom = torch.sqrt(exp_avg_sq, out=scratch).div_(correction2_sqrt).add_(ADAM_EPS)
        flat.sub_(torch.div(exp_avg, denom, out=scratch).mul_(step_size))

    def _rmsprop(self, flat: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor, scratch: torch.Tensor) -> None:
        square_avg = self.states["square_avg"]
        square_avg.mul_(RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - RMSPROP_ALPHA)
        denom = torch.sqrt(square_avg, out=scratch).add_(RMSPROP_EPS)
        flat.sub_(torch.div(grad, denom, out=scratch).mul_(lr))

    def _adagrad(self, flat: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor, scratch: torch.Tensor) -> None:
        state_sum = self.states["sum"]
        state_sum.addcmul_(grad, grad)
        denom = torch.sqrt(state_sum, out=scratch).add_(ADAGRAD_EPS)
        flat.sub_(torch.div(grad, denom, out=scratch).mul_(lr))
