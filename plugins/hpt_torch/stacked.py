"""The arithmetic of a stack of MLPs: every member's parameters are one row of a `[K, P]` tensor, and a forward
pass is one batched matrix product per layer for all K members.

Members may differ in every part of their architecture:
- width (`n_neurons`, `layer_shape`): each layer is padded to the widest member's, padded entries start at
  zero and their gradients are masked, so a narrower member computes exactly what it would alone (the
  padded units feed nothing downstream);
- depth (`n_hidden`): a shallower member's missing hidden layers are identity layers (an identity weight,
  zero bias, no activation, no dropout, masked gradients), which pass its activations through unchanged
  to its output layer in the last position;
- activation: at each hidden position, each run of consecutive members sharing a function gets it
  (`LayerPlan`; the engine orders its members so that runs are few: at most one per activation).

The backward pass is written out (`backward`, with the kernels autograd would call for each activation,
`hpt_torch.kernels`) rather than recorded by autograd: a stack's training step is a few dozen kernels, and
autograd's bookkeeping per operation would cost more than many of them. No operation here depends on K but
through the tensors' shapes: a step of 1,000 members issues the kernels a step of 4 does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from hpt_torch import kernels
from hpt_torch.datasets import CLASSIFICATION
from hpt_torch.network import ACTIVATIONS

IDENTITY = "identity"
"""The pass-through of a layer a shallower member does not have."""
SELU_ALPHA = 1.7580993408473766
"""Alpha dropout's saturation value for SELU (torch's `alpha_dropout`)."""
DROPOUT_LEVELS = 2**16
EXP_FLOOR = -80.0
"""Softmax probabilities below exp(-80) are computed as exp(-80) (negligible): an exp that underflows to zero
takes a slow path on some CPUs (100x)."""

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
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        self._functions = [(_forward(name), _backward(name, self.device), rows) for name, rows in self.runs]

    def restrict(self, rows: slice) -> LayerPlan:
        """The plan of a slice of the members, without dropout (validation in several passes)."""
        runs = [(name, slice(max(r.start, rows.start) - rows.start, min(r.stop, rows.stop) - rows.start))
                for name, r in self.runs if max(r.start, rows.start) < min(r.stop, rows.stop)]  # fmt: skip
        return LayerPlan(runs, None, self.device)

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """Activations of pre-activations `z` (`[K, B, width]`), one kernel (and a copy) per run."""
        if len(self._functions) == 1:
            return self._functions[0][0](z)
        out = torch.empty_like(z)
        for function, _, rows in self._functions:
            out[rows] = function(z[rows])
        return out

    def backward(self, g: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The gradient at the pre-activations from the gradient `g` (overwritten) at the activations
        `a = activate(z)`."""
        if len(self._functions) == 1:
            return self._functions[0][1](g, z, a)
        for _, backward_, rows in self._functions:
            backward_(g[rows], z[rows], a[rows])
        return g


def _forward(name: str):  # noqa: ANN202 - a tensor function
    return (lambda h: h) if name == IDENTITY else ACTIVATIONS[name].forward


def _backward(name: str, device: torch.device) -> kernels.Backward:
    return (lambda g, z, a: g) if name == IDENTITY else ACTIVATIONS[name].backward(device)


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
        plans.append(LayerPlan(runs, dropout, device))
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
    task: str, out: torch.Tensor, y: torch.Tensor, scale: float | torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's summed loss over the micro-batch's rows (`[K]`) of outputs `out` (`[K, B, n_out]`) on
    targets `y` (`[K, B]`), and the gradient at `out` of the members' summed losses times `scale` (a number, or
    `[K, 1, 1]` per member: 1 over the rows of the member's batch, which a micro-batch may be a part of).
    `weight` (`[K, B]`, 1 or 0) marks real rows where members' training sets differ in size (k folds)."""
    n_out = out.shape[2]
    if task != CLASSIFICATION:
        error = out.squeeze(2) - y
        if weight is not None:
            error.mul_(weight)
        return error.pow(2).sum(1), error.unsqueeze(2).mul_(scale).mul_(2)
    if n_out == 1:
        logits, target = out.squeeze(2), y.float()
        losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        grad = (torch.sigmoid(logits) - target).unsqueeze(2).mul_(scale)
    else:
        # logsumexp and softmax from one exp (clamped: an exp that underflows costs 100x more on some CPUs, and
        # probabilities below exp(-80) are negligible)
        target = y.unsqueeze(2)
        shifted = out - out.amax(2, keepdim=True)
        picked = shifted.gather(2, target)
        grad = shifted.clamp_(min=EXP_FLOOR).exp_()
        total = grad.sum(2, keepdim=True)
        grad.div_(total).scatter_add_(2, target, _minus_ones(target.shape, out.device)).mul_(scale)
        losses = total.log_().sub_(picked)
        if weight is None:
            return losses.sum((1, 2)), grad
        losses = losses.squeeze(2)
    if weight is not None:
        losses = losses * weight
        grad.mul_(weight.unsqueeze(2))
    return losses.sum(1), grad


@lru_cache(maxsize=64)
def _minus_ones(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """-1 at each target of a micro-batch (read, never written: the one-hot part of the softmax gradient)."""
    return torch.full(shape, -1.0, device=device)


def member_chunks(k: int, rows: int, width: int, limit: int = 2**24) -> list[slice]:
    """Slices of the K members small enough that a forward pass over `rows` rows stays under `limit` floats."""
    step = max(1, limit // max(1, rows * width))
    return [slice(start, min(k, start + step)) for start in range(0, k, step)] if k else []
