"""The optimisers, defined once: steps over a stack, one row of a `[K, P]` tensor per member, each member with
its own optimiser family, learning rate, momentum and weight decay.

The update rules are torch.optim's (SGD with momentum / Nesterov, Adam, AdamW, RMSprop, Adagrad with
their default betas, alpha and eps), written as one rule with per-member coefficients, so members of
different families step together in a dozen tensor operations on the whole stack, whatever K is:

    m = beta1 * m + c1 * g           (SGD: the momentum buffer; Adam: exp_avg; RMSprop, Adagrad: m = g)
    v = beta2 * v + c2 * g * g       (Adam: exp_avg_sq; RMSprop: square_avg; Adagrad: sum; SGD: v = 0)
    w -= lr * size * (a * g + b * m) / (s * sqrt(v) + eps)

A member that does not step at a micro-batch (its batch has not ended, or it has finished training) gets
beta = 1, c = 0 and a zero rate there: its weights, moments and accumulating gradient stay as they are.
A stack of one on a CPU steps with torch.optim's fused kernel for its family instead (`kernels.fused_step`):
one pass over its row instead of a dozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from hpt_torch import kernels

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
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10
SQRT_FLOOR = 1e-36
"""The second moment's floor under the square root: sqrt(1e-36) times Adam's bias correction adds less than half
an ulp to any eps here, so the step is unchanged; sqrt(0) takes a slow path on some CPUs (20x)."""
COEFFICIENTS = ("beta1", "c1", "beta2", "c2", "a", "b", "s", "eps", "adam")


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
    """The optimiser state of K members (`m`, `v`: `[K, P]`; `steps`: `[K, 1]`, steps taken) and their step.

    `decay_mask` (`[K, P]`) is 1 where L1 and L2 apply (a member's real weights; not biases, padding or the
    pass-through layers of a shallower member); `members` are the members' resolved params, in stack order.
    Whatever is fixed for an epoch (each micro-batch's rates with Adam's bias corrections, who steps where) is
    prepared by `start_epoch` in a few operations over all micro-batches at once; `step` then updates moments
    and weights in place with no host work that depends on K."""

    def __init__(self, members: Sequence[dict[str, Any]], decay_mask: torch.Tensor) -> None:
        device = decay_mask.device
        k, size = decay_mask.shape
        self.m = torch.zeros(k, size, device=device)
        self.v = torch.zeros(k, size, device=device)
        self.steps = torch.zeros(k, 1, dtype=torch.float64, device=device)
        rows = [coefficients(p) for p in members]
        self.coef = {
            name: torch.tensor([row[name] for row in rows], dtype=torch.float32, device=device).reshape(-1, 1)
            for name in COEFFICIENTS
        }
        self.any_second = any(row["c2"] for row in rows)
        self.any_nesterov = any(row["a"] for row in rows)
        self.any_adam = any(row["adam"] for row in rows)
        l2 = column_of(members, "l2", device)
        decoupled = column_of([{"x": float(p["optimizer"] == "adamw")} for p in members], "x", device)
        coupled_l2 = [p["l2"] * (p["optimizer"] != "adamw") for p in members]
        decoupled_l2 = [p["l2"] * (p["optimizer"] == "adamw") for p in members]
        self.coupled_decay = l2 * (1 - decoupled) * decay_mask if any(coupled_l2) else None
        self.decoupled_decay = l2 * decoupled * decay_mask if any(decoupled_l2) else None
        self.l1 = column_of(members, "l1", device) * decay_mask if any(p["l1"] for p in members) else None
        self.scratch = torch.empty_like(self.m)
        self.scaled = torch.empty_like(self.m)
        family = FAMILIES[members[0]["optimizer"]]
        self.fused = (
            k == 1
            and device.type == "cpu"
            and family in kernels.FUSED_FAMILIES
            and kernels.usable(f"fused_{family}", device)
        )
        if self.fused:
            name = members[0]["optimizer"]
            self._fused = {"family": family, "momentum": members[0]["momentum"] if name in ("momentum", "nesterov")
                           else 0.0, "nesterov": name == "nesterov", "betas": ADAM_BETAS,
                           "eps": ADAM_EPS if family == "adam" else ADAGRAD_EPS}  # fmt: skip

    def start_epoch(
        self,
        flat: torch.Tensor,
        grad: torch.Tensor,
        lr: torch.Tensor,
        stepping: torch.Tensor | None,
        n_steps: int,
        mask: torch.Tensor | None = None,
        accumulate: bool = False,
    ) -> None:
        """Prepare the steps of an epoch of `flat` (weights, updated in place) from `grad` (the data loss's
        gradient, overwritten by each step), with per-member rates `lr` (`[K, 1]`, 0 for a member that no longer
        trains). `stepping` (`[n_steps, K]`, 0 or 1) says who steps at each micro-batch, None: everyone at each.
        `mask` (`[K, P]`, 1 on trained parameters) zeroes the gradient of padding and pass-through layers; with
        `accumulate` a member's gradient is zeroed after it steps (the next micro-batch adds to it)."""
        self.flat, self.grad, self.mask, self._accumulate = flat, grad, mask, accumulate
        self._masked = stepping is not None
        if self.fused:
            self._rate = float(lr)
            self._fused_steps = self.steps.reshape(()).float()
            self._fused_rows = (flat[0], grad[0], self.m[0], self.v[0])
            return
        k = flat.shape[0]
        st = torch.ones(n_steps, k, device=flat.device) if stepping is None else stepping
        counts = self.steps.reshape(1, k) + st.double().cumsum(0)  # each member's step count at each micro-batch
        self._end_steps = counts[-1].reshape(k, 1)
        rate = (lr.reshape(1, k) * st).double()
        s = self.coef["s"].reshape(1, k).double().expand_as(counts)
        if self.any_adam:  # Adam's bias corrections (1 for the other families)
            adam = self.coef["adam"].reshape(1, k).bool()
            taken = counts.clamp_min(1)  # a member yet to step has rate 0 here; keep its factors finite
            rate = torch.where(adam, rate / (1 - ADAM_BETAS[0] ** taken), rate)
            s = torch.where(adam, (1 - ADAM_BETAS[1] ** taken).rsqrt(), s)
        self._rates, self._s = rate.float().unsqueeze(2), s.float().unsqueeze(2)
        if self.decoupled_decay is not None:  # AdamW: w *= 1 - l2 * lr before the step
            self._decay_rates = (lr.reshape(1, k) * st).unsqueeze(2)
        if self._masked:
            st = st.unsqueeze(2)
            one = torch.ones_like(st)
            self._st = st
            self._beta1 = torch.where(st > 0, self.coef["beta1"], one)
            self._c1 = self.coef["c1"] * st
            self._beta2 = torch.where(st > 0, self.coef["beta2"], one)
            self._c2 = self.coef["c2"] * st

    def end_epoch(self) -> None:
        if self.fused:
            self.steps.copy_(self._fused_steps.reshape(1, 1))
        else:
            self.steps = self._end_steps

    def step(self, index: int) -> None:
        """Update the members stepping at micro-batch `index` of the epoch (see `start_epoch`)."""
        self.apply(*self.step_inputs(index))

    def step_inputs(self, index: int) -> tuple[torch.Tensor | None, ...]:
        """What `apply` reads for micro-batch `index`: its rates, Adam's scales, AdamW's decay rates, and with
        members that do not step there, who steps and their moment coefficients (views, made per micro-batch;
        a captured CUDA graph copies them into its own buffers)."""
        if self.fused:
            return ()
        decay = self._decay_rates[index] if self.decoupled_decay is not None else None
        if not self._masked:
            return self._rates[index], self._s[index], decay, None, None, None, None, None
        per_step = (self._st, self._beta1, self._c1, self._beta2, self._c2)
        return (self._rates[index], self._s[index], decay, *(t[index] for t in per_step))

    @torch.no_grad()
    def apply(self, *inputs: torch.Tensor | None) -> None:
        """One step from `step_inputs`' tensors. Every operation works in place on the stack or on scratch
        tensors (on a CPU a fresh `[K, P]` result per operation costs more than the arithmetic), and none
        depends on K but through the shapes."""
        flat, grad, scratch = self.flat, self.grad, self.scratch
        rate, s, decay_rate, st, *moments = inputs if inputs else (None,) * 8
        if self.mask is not None:
            grad.mul_(self.mask)
        if self.l1 is not None:  # the gradient of l1 * sum|w|, as autograd gives it (sign(0) = 0)
            penalty = torch.sign(flat, out=scratch).mul_(self.l1)
            grad.add_(penalty if st is None else penalty.mul_(st))
        if self.decoupled_decay is not None:  # AdamW: decay the weights before the step
            decay = self._rate if self.fused else decay_rate
            flat.mul_(torch.mul(self.decoupled_decay, decay, out=scratch).neg_().add_(1))
        if self.coupled_decay is not None:
            penalty = torch.mul(self.coupled_decay, flat, out=scratch)
            grad.add_(penalty if st is None else penalty.mul_(st))
        if self.fused:
            self._fused_steps.add_(1)
            kernels.fused_step(self._fused["family"], *self._fused_rows, self._fused_steps,
                               self._rate, self._fused["momentum"], self._fused["nesterov"], self._fused["betas"],
                               self._fused["eps"])  # fmt: skip
        else:
            coef = self.coef
            if st is None:
                beta1, c1, beta2, c2 = coef["beta1"], coef["c1"], coef["beta2"], coef["c2"]
            else:
                beta1, c1, beta2, c2 = moments
            self.m.mul_(beta1).addcmul_(grad, c1)
            if self.any_second:
                self.v.mul_(beta2).addcmul_(torch.mul(grad, c2, out=scratch), grad)
            if self.any_nesterov:  # into scratch: a member that does not step keeps its accumulating gradient
                update = torch.mul(grad, coef["a"], out=self.scaled).addcmul_(self.m, coef["b"])
            else:
                update = self.m
            if self.any_second:
                # sqrt(0) takes a slow path on some CPUs (20x); sqrt(SQRT_FLOOR) * s is far below eps's rounding
                root = torch.sqrt(torch.clamp(self.v, min=SQRT_FLOOR, out=scratch), out=scratch)
                flat.addcdiv_(torch.mul(update, rate, out=self.scaled), root.mul_(s).add_(coef["eps"]), value=-1)
            else:
                flat.addcmul_(update, rate, value=-1)
        if self._accumulate:
            grad.zero_() if st is None else grad.mul_(1 - st)


def column_of(members: Sequence[dict[str, Any]], name: str, device: torch.device) -> torch.Tensor:
    return torch.tensor([float(p[name]) for p in members], dtype=torch.float32, device=device).reshape(-1, 1)
