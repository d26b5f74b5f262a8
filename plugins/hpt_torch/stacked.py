"""A population of MLPs as one stacked model: every member's parameters are one row of a `[K, P]`
tensor, and a forward pass is one batched matrix product per layer for all K members.

Members may differ in every part of their architecture:
- width (`n_neurons`, `layer_shape`): each layer is padded to the widest member's, padded entries start at
  zero and their gradients are masked, so a narrower member computes exactly what it would alone (the
  padded units feed nothing downstream);
- depth (`n_hidden`): a shallower member's missing hidden layers are identity layers (an identity weight,
  zero bias, no activation, no dropout, masked gradients), which pass its activations through unchanged
  to its output layer in the last position;
- activation: at each hidden position, each run of consecutive members sharing a function gets it
  (`LayerPlan`; the population orders its members so that runs are few).

The backward pass is written out (`backward`, with the kernels autograd would call for each activation)
rather than recorded by autograd: a stack's training step is a few dozen small kernels, and on a CPU
autograd's bookkeeping per operation costs more than many of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from hpt_torch.datasets import CLASSIFICATION
from hpt_torch.metrics import metric_names

ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "identity": lambda h: h,
}
"""The functional forms of `network.ACTIVATION_MODULES` (same defaults), and the pass-through of a layer
a shallower member does not have."""
IDENTITY = "identity"
SELU_ALPHA = 1.7580993408473766
"""Alpha dropout's saturation value for SELU (torch's `alpha_dropout`)."""
DROPOUT_LEVELS = 2**16
EXP_FLOOR = -80.0
"""Softmax probabilities below exp(-80) are computed as exp(-80) (negligible): an exp that underflows to zero
takes a slow path on some CPUs (100x)."""
SELU_SCALE, SELU_ELU_ALPHA = 1.0507009873554805, 1.6732632423543772
LEAKY_SLOPE = 0.01
_aten = torch.ops.aten
BACKWARD = {
    "relu": lambda g, z, a: _aten.threshold_backward.grad_input(g, a, 0, grad_input=g),
    "leaky_relu": lambda g, z, a: _aten.leaky_relu_backward.grad_input(g, z, LEAKY_SLOPE, False, grad_input=g),
    "elu": lambda g, z, a: _aten.elu_backward.grad_input(g, 1.0, 1.0, 1.0, False, z, grad_input=g),
    "selu": lambda g, z, a: _aten.elu_backward.grad_input(g, SELU_ELU_ALPHA, SELU_SCALE, 1.0, False, z, grad_input=g),
    "gelu": lambda g, z, a: _aten.gelu_backward.grad_input(g, z, grad_input=g),
    "tanh": lambda g, z, a: _aten.tanh_backward.grad_input(g, a, grad_input=g),
    "sigmoid": lambda g, z, a: _aten.sigmoid_backward.grad_input(g, a, grad_input=g),
    "identity": lambda g, z, a: g,
}
"""Each activation's gradient from the upstream gradient `g`, its input `z` and output `a`, written over `g`:
the kernels autograd calls for it, so a stacked member's gradients are the ones it gets alone."""
ACTIVATIONS_INTO = {
    "relu": lambda z, out: torch.clamp_min(z, 0, out=out),
    "leaky_relu": lambda z, out: _aten.leaky_relu.out(z, LEAKY_SLOPE, out=out),
    "elu": lambda z, out: _aten.elu.out(z, 1.0, 1.0, 1.0, out=out),
    "selu": lambda z, out: _aten.elu.out(z, SELU_ELU_ALPHA, SELU_SCALE, 1.0, out=out),  # what torch.selu computes
    "gelu": lambda z, out: _aten.gelu.out(z, out=out),
    "tanh": lambda z, out: torch.tanh(z, out=out),
    "sigmoid": lambda z, out: torch.sigmoid(z, out=out),
    "identity": lambda z, out: out.copy_(z),
}
"""`ACTIVATIONS` writing into `out`: a stack's runs of members fill one tensor, with no concatenation."""

Shapes = list[tuple[int, int]]
"""A member's layers as (outputs, inputs), input layer first."""


class FlatLayout:
    """Where each layer's padded weight matrix and bias lie in a member's row.

    Weights are stored transposed (`[in, out]`), so a layer is `baddbmm(bias, h, weight)` and autograd
    hands back contiguous weight gradients that need no copy before the optimiser step."""

    def __init__(self, member_shapes: Sequence[Shapes]) -> None:
        n_layers = len(member_shapes[0])
        self.shapes = [
            (max(s[i][0] for s in member_shapes), max(s[i][1] for s in member_shapes)) for i in range(n_layers)
        ]
        self.offsets: list[int] = []
        size = 0
        for out, inp in self.shapes:
            self.offsets.append(size)
            size += out * inp + out
        self.size = size
        self.padded = any(list(s) != self.shapes for s in member_shapes)

    def views(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the `[K, in, out]` (transposed) weights and `[K, 1, out]` biases viewing `flat`'s storage."""
        k = flat.shape[0]
        out = []
        for (o, i), start in zip(self.shapes, self.offsets, strict=True):
            weight, bias = flat[:, start : start + o * i], flat[:, start + o * i : start + o * i + o]
            out.append((weight.view(k, i, o), bias.view(k, 1, o)))
        return out

    def row(self, tensors: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
        """A member's tensors (weight, bias per layer, its own sizes) padded into one row."""
        row = torch.zeros(self.size, device=device)
        for (o, i), start, weight, bias in zip(self.shapes, self.offsets, tensors[0::2], tensors[1::2], strict=True):
            row[start : start + o * i].view(i, o)[: weight.shape[1], : weight.shape[0]] = weight.t()
            row[start + o * i : start + o * i + bias.shape[0]] = bias
        return row

    def split(self, row: torch.Tensor, shapes: Shapes) -> list[torch.Tensor]:
        """The inverse of `row`: a member's weight and bias per layer, at its own sizes (copies)."""
        out = []
        for (o, i), start, (mo, mi) in zip(self.shapes, self.offsets, shapes, strict=True):
            out.append(row[start : start + o * i].view(i, o)[:mi, :mo].t().clone(memory_format=torch.contiguous_format))
            out.append(row[start + o * i : start + o * i + mo].clone())
        return out

    def mask(self, shapes: Shapes, device: torch.device, trained: Sequence[bool] | None = None) -> torch.Tensor:
        """1 where a member with these shapes has a trained parameter, 0 on padding (and on the layers
        `trained` marks False: a shallower member's pass-through layers)."""
        trained = trained or [True] * len(shapes)
        ones = [torch.full(s, float(t)) for (o, i), t in zip(shapes, trained, strict=True) for s in ((o, i), (o,))]
        return self.row(ones, device)

    def weight_mask(self, device: torch.device) -> torch.Tensor:
        """1 on weight entries, 0 on biases (regularisation applies to weights only)."""
        mask = torch.zeros(self.size, device=device)
        for (o, i), start in zip(self.shapes, self.offsets, strict=True):
            mask[start : start + o * i] = 1.0
        return mask


@dataclass
class LayerPlan:
    """The activation and dropout of K members at one hidden position: `runs` of consecutive members
    sharing a function (name, rows), and the members' dropout (`Dropout`, None when no member drops)."""

    runs: list[tuple[str, slice]]
    dropout: Dropout | None = None

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """Activations of pre-activations `z` (`[K, B, width]`), one kernel per run."""
        if len(self.runs) == 1:
            return ACTIVATIONS[self.runs[0][0]](z)
        out = torch.empty_like(z)
        for name, rows in self.runs:
            ACTIVATIONS_INTO[name](z[rows], out[rows])
        return out

    def backward(self, g: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The gradient at the pre-activations from the gradient `g` (overwritten) at the activations
        `a = activate(z)`."""
        if len(self.runs) == 1:
            return BACKWARD[self.runs[0][0]](g, z, a)
        for name, rows in self.runs:
            BACKWARD[name](g[rows], z[rows], a[rows])
        return g


class Dropout:
    """torch's dropout (alpha dropout for SELU members) with a rate per member, for the whole stack at once;
    a rate of 0 leaves a member unchanged.

    An entry is dropped when a uniform 16-bit draw falls below its member's rate, so one 64-bit draw
    serves four entries: a quarter of the random numbers `torch.rand` would need, which on a CPU cost
    more than the layer itself. Rates are thereby rounded to a multiple of 1/65536. A kept entry becomes
    `h * scale + shift`, a dropped one `fill` (0 for plain dropout): `masks` returns the multiplier
    (`scale` or 0, also the gradient's) and the addend (None for plain dropout)."""

    def __init__(self, rates: Sequence[float], alpha: Sequence[bool], device: torch.device) -> None:
        levels = torch.tensor(rates, dtype=torch.float64).mul(DROPOUT_LEVELS).round()
        self.threshold = (levels - DROPOUT_LEVELS // 2).to(torch.int16).view(-1, 1, 1).to(device)
        rate = levels / DROPOUT_LEVELS
        a = 1.0 / torch.sqrt((SELU_ALPHA**2 * rate + 1) * (1 - rate))
        is_alpha = torch.tensor(alpha, dtype=torch.bool)
        self.alpha = bool(is_alpha.any())

        def column(values: torch.Tensor) -> torch.Tensor:
            return values.float().view(-1, 1, 1).to(device)

        self.scale = column(torch.where(is_alpha, a, 1 / (1 - rate)))
        self.shift = column(torch.where(is_alpha, a * SELU_ALPHA * rate, 0.0))
        self.fill = column(torch.where(is_alpha, a * SELU_ALPHA * (rate - 1), 0.0))

    def masks(self, shape: torch.Size, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        numel = math.prod(shape)
        bits = torch.empty((numel + 3) // 4, dtype=torch.int64, device=self.scale.device)
        bits.random_(-(2**63), None, generator=generator)
        uniform = bits.view(torch.int16)[:numel].view(shape)  # uniform on [-32768, 32767]
        keep = uniform >= self.threshold
        multiplier = torch.mul(keep, self.scale)
        return multiplier, torch.where(keep, self.shift, self.fill) if self.alpha else None


def layer_plans(functions: Sequence[Sequence[str]], rates: Sequence[float], device: torch.device) -> list[LayerPlan]:
    """One `LayerPlan` per hidden position, from each member's function per position (`functions[k][i]`,
    `identity` where it has no such layer) and dropout rate (applied only after its real layers). Members
    ordered by function make few runs (a run costs a kernel forward and one backward)."""
    plans = []
    for position in range(len(functions[0])):
        names = [f[position] for f in functions]
        runs, start = [], 0
        for end in range(1, len(names) + 1):
            if end == len(names) or names[end] != names[start]:
                runs.append((names[start], slice(start, end)))
                start = end
        member_rates = [0.0 if name == IDENTITY else rate for name, rate in zip(names, rates, strict=True)]
        dropout = Dropout(member_rates, [name == "selu" for name in names], device) if any(member_rates) else None
        plans.append(LayerPlan(runs, dropout))
    return plans


Layers = Sequence[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, the stack's `[K, in, out]` (transposed) weights and `[K, out]` biases (`FlatLayout.views`)."""


@dataclass
class Tape:
    """What a training forward pass keeps for its backward pass: each layer's input, and each hidden
    position's pre-activations, activations and dropout multiplier."""

    inputs: list[torch.Tensor]
    hidden: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


Masks = Sequence[tuple[torch.Tensor, torch.Tensor | None] | None]
"""Per hidden position, the dropout multiplier and addend (`Dropout.masks`) of a training pass, or None."""


def forward(
    layers: Layers, x: torch.Tensor, plans: Sequence[LayerPlan], masks: Masks | None = None
) -> tuple[torch.Tensor, Tape]:
    """Outputs `[K, B, n_out]` of K members on inputs `x` (`[K, B, d]`, or `[B, d]` shared by all), and the
    tape `backward` needs. `plans` hold each hidden position's activations; `masks` (training) its dropout
    (alpha dropout for SELU members), drawn beforehand for several micro-batches at once (`Dropout.masks`).

    The backward pass is written out (`backward`) rather than left to autograd: a stack's step is a few
    dozen kernels, and autograd's bookkeeping per operation would cost more than most of them."""
    k = layers[0][0].shape[0]
    h = x if x.dim() == 3 else x.expand(k, *x.shape)
    tape = Tape([], [])
    with torch.no_grad():
        for index, (weight, bias) in enumerate(layers):
            tape.inputs.append(h)
            h = torch.baddbmm(bias, h, weight)
            if index < len(layers) - 1:
                z, h = h, plans[index].activate(h)
                mask = masks[index] if masks is not None else None
                activations, multiplier = h, None
                if mask is not None:
                    multiplier, addend = mask
                    h = h * multiplier if addend is None else torch.addcmul(addend, h, multiplier)
                tape.hidden.append((z, activations, multiplier))
    return h, tape


@torch.no_grad()
def backward(
    layers: Layers, grads: Layers, plans: Sequence[LayerPlan], tape: Tape, grad_out: torch.Tensor, accumulate: bool
) -> None:
    """Write (or, with `accumulate`, add) the gradients of the members' losses into `grads` (views like
    `layers`), from the gradient `grad_out` at the outputs of the `forward` pass that recorded `tape`."""
    g = grad_out
    alone = g.shape[0] == 1  # a stack of one: its row views are contiguous, products can write into them
    for index in range(len(layers) - 1, -1, -1):
        grad_weight, grad_bias = grads[index]
        inputs = tape.inputs[index].transpose(1, 2)
        if accumulate:
            grad_bias.add_(g.sum(1, keepdim=True))
            grad_weight.baddbmm_(inputs, g) if alone else grad_weight.add_(torch.bmm(inputs, g))
        else:
            torch.sum(g, 1, keepdim=True, out=grad_bias)
            # into a fresh tensor, then one strided copy: a batched product straight into the rows of a
            # stack of several falls back to one product per member
            torch.bmm(inputs, g, out=grad_weight) if alone else grad_weight.copy_(torch.bmm(inputs, g))
        if index == 0:
            return
        g = torch.bmm(g, layers[index][0].transpose(1, 2))
        z, activations, multiplier = tape.hidden[index - 1]
        if multiplier is not None:
            g.mul_(multiplier)
        g = plans[index - 1].backward(g, z, activations)


@torch.no_grad()
def loss_gradient(
    task: str, out: torch.Tensor, y: torch.Tensor, scale: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's mean loss (`[K]`) of outputs `out` (`[K, B, n_out]`) on targets `y` (`[K, B]`), and the
    gradient at `out` of the members' summed losses times `scale` (a number, or `[K, 1, 1]` per member: 1
    over the rows of the member's batch, which a micro-batch may be a part of)."""
    n_out = out.shape[2]
    if task != CLASSIFICATION:
        error = out.squeeze(2) - y
        return error.pow(2).mean(1), error.unsqueeze(2).mul_(scale).mul_(2)
    if n_out == 1:
        logits, target = out.squeeze(2), y.float()
        losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
        return losses, (torch.sigmoid(logits) - target).unsqueeze(2).mul_(scale)
    # logsumexp and softmax from one exp (clamped: an exp that underflows costs 100x more on some CPUs, and
    # probabilities below exp(-80) are negligible)
    target = y.unsqueeze(2)
    shifted = out - out.amax(2, keepdim=True)
    picked = shifted.gather(2, target)
    grad = shifted.clamp_(min=EXP_FLOOR).exp_()
    total = grad.sum(2, keepdim=True)
    grad.div_(total).scatter_add_(2, target, _minus_ones(target.shape, out.device))
    return total.log_().sub_(picked).mean((1, 2)), grad.mul_(scale)


@lru_cache(maxsize=64)
def _minus_ones(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """-1 at each target of a micro-batch (read, never written: the one-hot part of the softmax gradient)."""
    return torch.full(shape, -1.0, device=device)


def member_losses(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean loss (`[K]`) of outputs `out` (`[K, B, n_out]`) on targets `y` (`[K, B]` or `[B]`),
    as `metrics.loss_function` computes it for one model."""
    k, b, n_out = out.shape
    y = y.expand(k, b)
    if task != CLASSIFICATION:
        return (out.squeeze(2) - y).pow(2).mean(1)
    if n_out == 1:
        return F.binary_cross_entropy_with_logits(out.squeeze(2), y.float(), reduction="none").mean(1)
    # cross-entropy as logsumexp minus the target's logit: on a CPU, log_softmax over a few classes costs
    # several times more per row
    return (out.logsumexp(2) - out.gather(2, y.unsqueeze(2)).squeeze(2)).mean(1)


def member_metrics(
    task: str, out: torch.Tensor, y: torch.Tensor, n_classes: int, y_mean: float, y_std: float
) -> list[dict[str, float]]:
    """`metrics.compute_metrics` for each of K members at once (outputs `[K, N, n_out]`, shared targets `[N]`),
    with one host transfer."""
    k = out.shape[0]
    loss = member_losses(task, out, y)
    if task == CLASSIFICATION:
        pred = (out.squeeze(2) > 0).long() if out.shape[2] == 1 else out.argmax(2)
        cells = n_classes * n_classes
        index = torch.arange(k, device=out.device).unsqueeze(1) * cells + y * n_classes + pred
        confusion = torch.bincount(index.reshape(-1), minlength=k * cells).view(k, n_classes, n_classes)
        true_pos = confusion.diagonal(dim1=1, dim2=2).float()
        support = confusion.sum(2) + confusion.sum(1)
        present = support > 0
        f1 = torch.where(present, 2 * true_pos / support.clamp_min(1), 0).sum(1) / present.sum(1)
        values = torch.stack([loss, (pred == y).float().mean(1), f1], 1)
    else:
        pred, truth = out.squeeze(2) * y_std + y_mean, y * y_std + y_mean
        err = pred - truth
        ss_tot = ((truth - truth.mean()) ** 2).sum().clamp_min(1e-12)
        values = torch.stack([loss, err.pow(2).mean(1).sqrt(), err.abs().mean(1), 1 - err.pow(2).sum(1) / ss_tot], 1)
    names = metric_names(task)
    return [dict(zip(names, row, strict=True)) for row in values.detach().float().cpu().tolist()]


def member_chunks(k: int, rows: int, width: int, limit: int = 2**24) -> list[slice]:
    """Slices of the K members small enough that a forward pass over `rows` rows stays under `limit` floats."""
    step = max(1, limit // max(1, rows * width))
    return [slice(start, min(k, start + step)) for start in range(0, k, step)] if k else []
