"""Optimiser steps over a stacked population: one row of a `[K, P]` tensor per member, each member with
its own optimiser family, learning rate, momentum and weight decay.

The update rules are torch.optim's (SGD with momentum / Nesterov, Adam, AdamW, RMSprop, Adagrad with
their default betas, alpha and eps), written as one rule with per-member coefficients, so members of
different families step together in a few tensor operations on the whole stack:

    m = beta1 * m + c1 * g           (SGD: the momentum buffer; Adam: exp_avg; RMSprop, Adagrad: m = g)
    v = beta2 * v + c2 * g * g       (Adam: exp_avg_sq; RMSprop: square_avg; Adagrad: sum; SGD: v = 0)
    w -= lr * size * (a * g + b * m) / (s * sqrt(v) + eps)

torch.optim applies one rate per parameter group and a group per member would cost K times the Python
overhead the stack exists to avoid. The two moments map to torch.optim's state names (`STATE_NAMES`), so
a member's rows convert to and from its own `torch.optim` state (checkpoints stay interchangeable).
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
"""Optimisers that share an update rule: plain SGD is momentum 0, AdamW is decoupled decay."""
STATE_NAMES: dict[str, tuple[str | None, str | None]] = {
    "sgd": ("momentum_buffer", None),
    "adam": ("exp_avg", "exp_avg_sq"),
    "rmsprop": (None, "square_avg"),
    "adagrad": (None, "sum"),
}
"""The torch.optim state holding each family's first moment `m` and second moment `v` (None: kept by none)."""
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10
SQRT_FLOOR = 1e-36
"""The second moment's floor under the square root: sqrt(1e-36) times Adam's bias correction adds less than half
an ulp to any eps here, so the step is unchanged (see `StackedOptimizer.step`)."""


def coefficients(params: dict[str, Any]) -> dict[str, float]:
    """A member's coefficients of the shared rule (`size` and `s` of Adam also depend on the step)."""
    name = params["optimizer"]
    family = FAMILIES[name]
    if family == "sgd":
        momentum = params["momentum"] if name in ("momentum", "nesterov") else 0.0
        nesterov = name == "nesterov"
        return {"beta1": momentum, "c1": 1.0, "beta2": 0.0, "c2": 0.0, "a": float(nesterov),
                "b": momentum if nesterov else 1.0, "s": 0.0, "eps": 1.0, "adam": 0.0}  # fmt: skip
    second = {"adam": (ADAM_BETAS[1], 1 - ADAM_BETAS[1], ADAM_EPS), "rmsprop": (RMSPROP_ALPHA, 1 - RMSPROP_ALPHA,
              RMSPROP_EPS), "adagrad": (1.0, 1.0, ADAGRAD_EPS)}[family]  # fmt: skip
    beta1, c1 = (ADAM_BETAS[0], 1 - ADAM_BETAS[0]) if family == "adam" else (0.0, 1.0)
    return {"beta1": beta1, "c1": c1, "beta2": second[0], "c2": second[1], "a": 0.0, "b": 1.0, "s": 1.0,
            "eps": second[2], "adam": float(family == "adam")}  # fmt: skip


class StackedOptimizer:
    """A torch.optim-equivalent step for K members at once, of any mix of optimisers.

    `decay_mask` (`[K, P]`) is 1 where L1 and L2 apply (a member's real weights; not biases, padding or the
    pass-through layers of a shallower member); `members` are the members' resolved params, in stack order;
    `m` and `v` the moments (`[K, P]`), `steps` the steps each member took.

    Two ways to step, `per_member` or not (by default, per member on a CPU):
    - per member: torch.optim's fused kernel on each member's row (`MemberStep`). On a CPU a kernel's
      launch is cheap and memory passes are dear: one pass per member beats a dozen over the stack.
    - the shared rule above on the whole stack: a dozen kernels whatever K is, where launches are dear (GPU).
    Whatever is fixed for an epoch (each micro-batch's rates with Adam's bias corrections, AdamW's decay
    factors, the rows of the members that step) is prepared once by `start_epoch`, and `step` only
    updates moments and weights.
    """

    def __init__(
        self,
        members: Sequence[dict[str, Any]],
        decay_mask: torch.Tensor,
        m: torch.Tensor,
        v: torch.Tensor,
        steps: torch.Tensor,
        per_member: bool | None = None,
    ) -> None:
        device = decay_mask.device
        self.m, self.v = m, v
        self.steps = steps.to(device=device, dtype=torch.float64).reshape(-1, 1)
        rows = [coefficients(p) for p in members]

        def column(name: str) -> torch.Tensor:
            return torch.tensor([row[name] for row in rows], dtype=torch.float32, device=device).reshape(-1, 1)

        self.coef = {name: column(name) for name in rows[0]}
        self.any_second = any(row["c2"] for row in rows)
        self.any_nesterov = any(row["a"] for row in rows)
        self.any_adam = any(row["adam"] for row in rows)
        l2 = column_of(members, "l2", device)
        decoupled = column_of([{"x": float(p["optimizer"] == "adamw")} for p in members], "x", device)
        self.coupled_decay = l2 * (1 - decoupled) * decay_mask if bool((l2 * (1 - decoupled)).any()) else None
        self.decoupled_decay = l2 * decoupled * decay_mask if bool((l2 * decoupled).any()) else None
        l1 = column_of(members, "l1", device)
        self.l1 = l1 * decay_mask if bool(l1.any()) else None
        self.members = [dict(p) for p in members]
        self.per_member = device.type == "cpu" if per_member is None else per_member

    def keep(self, rows: torch.Tensor) -> None:
        """Drop the members not in `rows` (those that finished) from every per-member tensor."""
        for name in ("coupled_decay", "decoupled_decay", "l1", "steps", "m", "v"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[rows])
        self.coef = {name: value[rows] for name, value in self.coef.items()}
        self.members = [self.members[i] for i in rows.tolist()]

    def start_epoch(
        self,
        flat: torch.Tensor,
        grad: torch.Tensor,
        lr: torch.Tensor,
        counts: Sequence[int],
        mask: torch.Tensor | None = None,
        accumulate: bool = False,
    ) -> None:
        """Prepare the steps of an epoch of `flat` (weights, updated in place) from `grad` (the data loss's
        gradient, overwritten by each step), with per-member rates `lr` (`[K, 1]`) and `counts[i]` members
        (the first rows) stepping at micro-batch `i`. `mask` (`[K, P]`, 1 on trained parameters) zeroes the
        gradient of padding and pass-through layers; with `accumulate` each step zeroes the gradient it used
        (the next micro-batch adds to it)."""
        self._accumulate = accumulate
        k = flat.shape[0]
        stepping = torch.arange(k, device=flat.device) < torch.tensor(counts, device=flat.device).unsqueeze(1)
        steps = self.steps.reshape(1, k) + stepping.cumsum(0)  # each member's step count at each micro-batch
        self._end_steps = steps[-1].reshape(k, 1)
        decay = None if self.decoupled_decay is None else torch.mul(self.decoupled_decay, lr).neg_().add_(1)
        self._rows: dict[int, _Rows] = {}
        if self.per_member:
            rates, done = lr.flatten().tolist(), self.steps.flatten().tolist()
            self._member_steps = [
                MemberStep(p, flat[i], grad[i], self.m[i], self.v[i], rates[i], done[i])
                for i, p in enumerate(self.members)
            ]
            self._plan = [(self._rows_of(count, flat, grad, decay, mask), None, None) for count in counts]
            return
        rate, s = lr.reshape(1, k).double().expand_as(steps), self.coef["s"].reshape(1, k).double().expand_as(steps)
        if self.any_adam:  # Adam's bias corrections (1 for the other families)
            adam = self.coef["adam"].reshape(1, k).bool()
            rate = torch.where(adam, rate / (1 - ADAM_BETAS[0] ** steps), rate)
            s = torch.where(adam, (1 - ADAM_BETAS[1] ** steps).rsqrt(), s)
        rates, scales = rate.float().unsqueeze(2), s.float().unsqueeze(2)
        self._plan = [
            (self._rows_of(count, flat, grad, decay, mask), rates[index, :count], scales[index, :count])
            for index, count in enumerate(counts)
        ]

    def _rows_of(self, count: int, *tensors: torch.Tensor | None) -> _Rows:
        if count not in self._rows:
            self._rows[count] = _Rows(self, *tensors, count)
        return self._rows[count]

    def end_epoch(self) -> None:
        self.steps = self._end_steps

    @torch.no_grad()
    def step(self, index: int) -> None:
        """Update the members stepping at micro-batch `index` of the epoch (see `start_epoch`). Every
        operation works in place on the stack or on scratch tensors: on a CPU a fresh `[K, P]` result per
        operation costs more than the arithmetic."""
        r, rate, s = self._plan[index]
        flat, grad = r.flat, r.grad
        if r.mask is not None:
            grad.mul_(r.mask)
        if r.l1 is not None:  # the gradient of l1 * sum|w|, as autograd gives it (sign(0) = 0)
            grad.addcmul_(r.l1, torch.sign(flat, out=r.scratch))
        if r.decay is not None:  # AdamW: decay the weights before the step
            flat.mul_(r.decay)
        if r.coupled_decay is not None:
            grad.addcmul_(r.coupled_decay, flat)
        if self.per_member:
            for member in self._member_steps[: r.count]:
                member.step()
            if self._accumulate:
                grad.zero_()
            return
        r.m.mul_(r.beta1).addcmul_(grad, r.c1)
        if self.any_second:
            r.v.mul_(r.beta2).addcmul_(torch.mul(grad, r.c2, out=r.scratch), grad)
        update = grad.mul_(r.a).addcmul_(r.m, r.b) if self.any_nesterov else r.m
        if self.any_second:
            # sqrt(0) takes a slow path on some CPUs (20x); sqrt(SQRT_FLOOR) * s is far below eps's rounding
            denom = torch.sqrt(torch.clamp(r.v, min=SQRT_FLOOR, out=r.scratch), out=r.scratch).mul_(s).add_(r.eps)
            flat.addcdiv_(torch.mul(update, rate, out=r.scaled), denom, value=-1)
        else:
            flat.addcmul_(update, rate, value=-1)
        if self._accumulate:
            grad.zero_()


class MemberStep:
    """One member's update on the CPU: torch.optim's fused kernel for its family (one pass over its row instead
    of a dozen over the stack; Adam, Adagrad and SGD with momentum or Nesterov), RMSprop's rule on its row.
    L1, L2 and AdamW's decay are applied to the stack before (`StackedOptimizer.step`), as for the stack."""

    def __init__(
        self,
        params: dict[str, Any],
        flat: torch.Tensor,
        grad: torch.Tensor,
        m: torch.Tensor,
        v: torch.Tensor,
        lr: float,
        steps: float,
    ) -> None:
        name = params["optimizer"]
        self.family, self.lr = FAMILIES[name], lr
        self.flat, self.grad, self.m, self.v = flat, grad, m, v
        self.steps = torch.tensor(steps, dtype=torch.float32)  # torch.optim's state: a float32 count
        self.momentum = params["momentum"] if name in ("momentum", "nesterov") else 0.0
        self.nesterov = name == "nesterov"

    def step(self) -> None:
        if self.family == "adam":
            self.steps.add_(1)
            torch._fused_adam_([self.flat], [self.grad], [self.m], [self.v], [], [self.steps], lr=self.lr,
                               beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], weight_decay=0.0, eps=ADAM_EPS,
                               amsgrad=False, maximize=False)  # fmt: skip
        elif self.family == "adagrad":
            self.steps.add_(1)
            torch._fused_adagrad_([self.flat], [self.grad], [self.v], [self.steps], lr=self.lr, lr_decay=0.0,
                                  weight_decay=0.0, eps=ADAGRAD_EPS, maximize=False)  # fmt: skip
        elif self.family == "sgd":  # a buffer of zeros gives the first step torch.optim's (buffer = gradient)
            torch._fused_sgd_([self.flat], [self.grad], [self.m] if self.momentum else [], weight_decay=0.0,
                              momentum=self.momentum, lr=self.lr, dampening=0.0, nesterov=self.nesterov,
                              maximize=False, is_first_step=False)  # fmt: skip
        else:  # rmsprop
            self.v.mul_(RMSPROP_ALPHA).addcmul_(self.grad, self.grad, value=1 - RMSPROP_ALPHA)
            self.flat.addcdiv_(self.grad, self.v.sqrt().add_(RMSPROP_EPS), value=-self.lr)


class _Rows:
    """The first `count` rows of every per-member tensor of a `StackedOptimizer` (views, made once per epoch)."""

    def __init__(
        self,
        opt: StackedOptimizer,
        flat: torch.Tensor,
        grad: torch.Tensor,
        decay: torch.Tensor | None,
        mask: torch.Tensor | None,
        count: int,
    ) -> None:
        def rows(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value[:count]

        self.flat, self.grad, self.m, self.v = flat[:count], grad[:count], opt.m[:count], opt.v[:count]
        self.l1, self.coupled_decay = rows(opt.l1), rows(opt.coupled_decay)
        self.decay, self.mask = rows(decay), rows(mask)
        self.beta1, self.c1, self.beta2, self.c2 = (opt.coef[name][:count] for name in ("beta1", "c1", "beta2", "c2"))
        self.a, self.b, self.eps = (opt.coef[name][:count] for name in ("a", "b", "eps"))
        self.scratch = torch.empty_like(self.flat)
        self.scaled = None if opt.per_member else torch.empty_like(self.flat)
        self.count = count


def column_of(members: Sequence[dict[str, Any]], name: str, device: torch.device) -> torch.Tensor:
    return torch.tensor([float(p[name]) for p in members], dtype=torch.float32, device=device).reshape(-1, 1)
