"""The engine's private PyTorch calls, each checked against a public reference at first use.

Two kinds of call are not public API and may change between PyTorch releases:
- the aten backward operators autograd itself calls for each activation (`threshold_backward`, ...), written
  into the upstream gradient: a stack's backward pass then computes exactly what autograd would;
- torch.optim's fused single-tensor kernels (`torch._fused_adam_`, `_fused_adagrad_`, `_fused_sgd_`): on a CPU
  one pass over a network's parameters instead of a dozen.

Each is checked once per device type (`usable`): run on a small random input and compared with autograd or
with torch.optim. One that fails or disagrees is replaced, for the rest of the process, by its public fallback
(the activation's derivative in public operations; the engine's shared update rule), with one warning.
`prepare` runs the checks before training, so none runs inside a captured CUDA graph.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import torch

log = logging.getLogger(__name__)

LEAKY_SLOPE = 0.01
SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
_aten = torch.ops.aten

Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

PRIVATE_BACKWARD: dict[str, Backward] = {
    "relu": lambda g, z, a: _aten.threshold_backward.grad_input(g, a, 0, grad_input=g),
    "leaky_relu": lambda g, z, a: _aten.leaky_relu_backward.grad_input(g, z, LEAKY_SLOPE, False, grad_input=g),
    "elu": lambda g, z, a: _aten.elu_backward.grad_input(g, 1.0, 1.0, 1.0, False, z, grad_input=g),
    "selu": lambda g, z, a: _aten.elu_backward.grad_input(g, SELU_ALPHA, SELU_SCALE, 1.0, False, z, grad_input=g),
    "gelu": lambda g, z, a: _aten.gelu_backward.grad_input(g, z, grad_input=g),
    "tanh": lambda g, z, a: _aten.tanh_backward.grad_input(g, a, grad_input=g),
    "sigmoid": lambda g, z, a: _aten.sigmoid_backward.grad_input(g, a, grad_input=g),
}
"""Each activation's gradient from the upstream gradient `g`, its input `z` and output `a`, written over `g`:
the kernels autograd calls for it."""

PUBLIC_BACKWARD: dict[str, Backward] = {
    "relu": lambda g, z, a: g.mul_(a > 0),
    "leaky_relu": lambda g, z, a: g.mul_(torch.where(z > 0, 1.0, LEAKY_SLOPE)),
    "elu": lambda g, z, a: g.mul_(torch.where(z > 0, 1.0, a + 1.0)),
    "selu": lambda g, z, a: g.mul_(torch.where(z > 0, SELU_SCALE, a + SELU_SCALE * SELU_ALPHA)),
    "gelu": lambda g, z, a: g.mul_(torch.special.ndtr(z).add_(z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))),
    "tanh": lambda g, z, a: g.mul_(1 - a * a),
    "sigmoid": lambda g, z, a: g.mul_(a * (1 - a)),
}
"""The same gradients in public operations (the fallback)."""

_checked: dict[tuple[str, str], bool] = {}


def usable(name: str, device: torch.device, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> bool:
    """Whether the private call `name` (an activation, or `fused_<family>`) works and agrees with its public
    reference on `device` (checked once per device type, and remembered)."""
    key = (name, device.type)
    if key not in _checked:
        try:
            ok = (
                _check_fused(name[len("fused_") :], device)
                if name.startswith("fused_")
                else _check(name, forward, device)
            )
        except Exception as exc:  # an operator renamed or removed in this PyTorch
            log.debug("private kernel %s failed: %s", name, exc)
            ok = False
        if not ok:
            log.warning(
                "hpt: PyTorch %s: the private %s kernel is unusable here; using public operations",
                torch.__version__,
                name,
            )
        _checked[key] = ok
    return _checked[key]


def prepare(activations: Iterable[tuple[str, Callable[[torch.Tensor], torch.Tensor]]], device: torch.device) -> None:
    """Run the checks of these activations' kernels now (before any CUDA graph capture)."""
    for name, forward in activations:
        usable(name, device, forward)


def activation_backward(name: str, forward: Callable[[torch.Tensor], torch.Tensor], device: torch.device) -> Backward:
    """The backward of activation `name` on `device`: the private kernel if it checked out, else the public one."""
    return PRIVATE_BACKWARD[name] if usable(name, device, forward) else PUBLIC_BACKWARD[name]


def _check(name: str, forward: Callable[[torch.Tensor], torch.Tensor] | None, device: torch.device) -> bool:
    assert forward is not None
    generator = torch.Generator().manual_seed(0)
    z = (torch.randn(3, 5, 7, generator=generator) * 3).to(device)
    g = torch.randn(3, 5, 7, generator=generator).to(device)
    leaf = z.clone().requires_grad_()
    with torch.enable_grad():
        (want,) = torch.autograd.grad(forward(leaf), leaf, g)
    got = PRIVATE_BACKWARD[name](g.clone(), z, forward(z))
    return bool(torch.allclose(got, want, rtol=1e-5, atol=1e-6))


def fused_step(
    family: str, flat: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, steps: torch.Tensor,
    lr: float, momentum: float, nesterov: bool, betas: tuple[float, float], eps: float,
) -> None:  # fmt: skip
    """One member's update with torch.optim's fused kernel for its family (Adam, Adagrad, SGD); `steps` (a float
    tensor, torch.optim's state) counts the steps taken, this one included."""
    if family == "adam":
        torch._fused_adam_([flat], [grad], [m], [v], [], [steps], lr=lr, beta1=betas[0], beta2=betas[1],
                           weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)  # fmt: skip
    elif family == "adagrad":
        torch._fused_adagrad_([flat], [grad], [v], [steps], lr=lr, lr_decay=0.0, weight_decay=0.0, eps=eps,
                              maximize=False)  # fmt: skip
    else:  # a buffer of zeros gives the first step torch.optim's (buffer = gradient)
        torch._fused_sgd_([flat], [grad], [m] if momentum else [], weight_decay=0.0, momentum=momentum, lr=lr,
                          dampening=0.0, nesterov=nesterov, maximize=False, is_first_step=False)  # fmt: skip


FUSED_FAMILIES = ("adam", "adagrad", "sgd")


def _check_fused(family: str, device: torch.device) -> bool:
    """Two fused steps against torch.optim's update rule written in public operations (building a torch.optim
    optimiser would import torch._dynamo: seconds in every fresh process)."""
    if family not in FUSED_FAMILIES:
        return False
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(37, generator=generator, dtype=torch.float64)
    grads = [torch.randn(37, generator=generator, dtype=torch.float64) for _ in range(2)]
    lr, momentum, betas = 0.01, 0.9, (0.9, 0.999)
    beta1, beta2 = betas
    eps = 1e-8 if family == "adam" else 1e-10
    want, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    flat, fm, fv = (t.float().to(device) for t in (start, m, v))
    steps = torch.zeros((), dtype=torch.float32, device=device)
    for t, grad in enumerate(grads, start=1):
        if family == "adam":
            m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad * grad
            want = want - lr / (1 - beta1**t) * m / (v.sqrt() / math.sqrt(1 - beta2**t) + eps)
        elif family == "adagrad":
            v = v + grad * grad
            want = want - lr * grad / (v.sqrt() + eps)
        else:  # SGD with Nesterov momentum
            m = momentum * m + grad
            want = want - lr * (grad + momentum * m)
        steps.add_(1)
        fused_step(family, flat, grad.float().to(device), fm, fv, steps, lr, momentum, True, betas, eps)
    return bool(torch.allclose(flat.double().cpu(), want, rtol=1e-5, atol=1e-7))
