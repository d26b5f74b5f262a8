"""Population training: many configurations trained at once as one stacked model.

Tiny tabular MLPs leave the hardware mostly idle; each trial pays Python and kernel-launch overhead
for a few small matrix products. Stacked, K members cost one forward, one backward and one optimiser
step per (micro-)batch. Members may differ in every hyperparameter of the default space: width and
depth are padded (`stacked`), activations grouped per layer, optimisers share one update rule with
per-member coefficients (`stacked_optim`), and batch sizes share a common micro-batch (the smallest
batch size of the stack): each member accumulates the gradient of its own batch over the micro-batches
it spans and steps when its batch ends, so it takes exactly the steps it would take alone.
`stack_groups` decides which members share a stack (buckets where padding would cost more than it
saves, batch sizes that do not divide each other).

Each member still trains as it would alone: its own initial weights and data order (its `TrainingRun`,
built with its own seed), its own rates, schedule, regularisation, its own early stopping, its own
divergence (a non-finite training loss fails that member only), its own reports, pruning and
checkpoint. Finished members leave the stack (which is repacked when its padding can shrink much), so
the survivors' epochs get cheaper. Dropout masks come from one generator shared by the stack, so a
member with dropout follows a different (equally random) mask sequence than it would alone. The
generator is seeded afresh each epoch from the dropout seed and the epoch, so a stack of one (the
`stacked` trainer of a single trial) that continues from a checkpoint draws the masks it would have
drawn training straight through.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hpt.backend import TrialContext, TrialPruned

from hpt_torch.network import hidden_widths
from hpt_torch.stacked import (
    IDENTITY,
    FlatLayout,
    Shapes,
    backward,
    forward,
    layer_plans,
    loss_gradient,
    member_chunks,
    member_metrics,
)
from hpt_torch.stacked_optim import FAMILIES, STATE_NAMES, StackedOptimizer
from hpt_torch.training import TrainingRun, save_checkpoint

REPACK_BELOW = 0.75
"""Repack the stack when the members still training fit in this fraction of its padded size."""
CHUNK_FLOATS = 2**21
"""Most floats of training inputs and dropout masks drawn at once (a few micro-batches: fewer, larger kernels)."""
AUTO_BATCH_TRIALS = {"cpu": 1, "cuda": 64, "mps": 16}
"""`--batch-trials auto` per device type (see `auto_batch_trials`)."""


@dataclass(frozen=True)
class CostModel:
    """Seconds per epoch, roughly, of a stack: a fixed cost per micro-batch (Python and kernel launches), per
    member and per run of members sharing an activation at a layer; then the arithmetic over the padded
    network: per multiply-add and training row (forward and backward), per padded hidden unit and row
    (activations, dropout), per parameter and optimiser step, and per parameter, member and micro-batch
    (a stack's gradients, copied into its rows and masked). Only the ratios matter: they decide where
    buckets save time."""

    step: float
    member_step: float
    run_step: float
    mac: float
    unit: float
    parameter: float
    member_parameter: float

    def cost(self, features: StackFeatures) -> float:
        return sum(c * term for c, term in zip(astuple(self), features.terms(), strict=True))


@dataclass(frozen=True)
class DeviceCosts:
    """The cost models of one device: of a network trained alone (a stack of one) and of a stack of several,
    fitted apart by `benchmarks/population_cost.py` (non-negative least squares on timed stacks of random
    default-space members): a stack's per-member work costs more than the same work alone (its activations
    outgrow the CPU's caches), and a model fitted to both would misjudge the one `stack_groups` compares."""

    alone: CostModel
    stacked: CostModel
    stack_floats: int | None = None
    stack_margin: float = 1.0

    def stack(self, features: StackFeatures) -> float:
        """Seconds per epoch; infinite for a stack of several whose activations per micro-batch outgrow
        `stack_floats` (on a CPU its element-wise work then runs from a slower cache than its members' alone,
        which no linear model of the costs captures).

        A stack of several costs `stack_margin` times its model's figure. `stack_groups` keeps the cuts the
        model finds cheapest, and so the ones whose cost it underestimates most: on a CPU the stacks it
        formed ran a median 1.25x slower than predicted (19 stacks of 64 digits draws; alone / stacked
        predicted 1.08x to 2.22x, measured 0.91x to 1.68x). With the margin, a stack forms only where the
        prediction leaves room for that error."""
        if features.members == 1:
            return self.alone.cost(features)
        if self.stack_floats is not None and features.micro * features.members * features.units > self.stack_floats:
            return math.inf
        return self.stacked.cost(features) * self.stack_margin


@dataclass(frozen=True)
class StackFeatures:
    """What a stack's epoch costs depends on (`DeviceCosts.stack`), grown one member at a time: `add` a
    member's padded widths per hidden position, depth, batch size and activation."""

    rows: int
    n_inputs: int
    n_outputs: int
    members: int = 0
    micro_steps: int = 0
    micro: int = 0
    member_steps: int = 0
    widths: tuple[int, ...] = ()
    depth: int = 0
    activations: frozenset[str] = frozenset()

    def add(self, widths: Sequence[int], depth: int, batch_size: int, activation: str) -> StackFeatures:
        """A copy with one more member (its hidden widths padded to the stack's depth)."""
        steps = math.ceil(self.rows / min(batch_size, self.rows))
        return replace(
            self,
            members=self.members + 1,
            micro_steps=max(self.micro_steps, steps),
            micro=min(self.micro or self.rows, batch_size, self.rows),
            member_steps=self.member_steps + steps,
            widths=tuple(max(a, b) for a, b in zip(self.widths or (0,) * len(widths), widths, strict=True)),
            depth=max(self.depth, depth),
            activations=self.activations | {activation},
        )

    def terms(self) -> tuple[float, ...]:
        """What `CostModel`'s coefficients multiply, in the order of its fields."""
        k, steps = self.members, self.micro_steps
        runs = len(self.activations) * self.depth
        return (steps, steps * k, steps * runs, self.rows * k * self.macs, self.rows * k * self.units,
                self.member_steps * self.parameters, steps * k * self.parameters)  # fmt: skip

    @property
    def _used(self) -> tuple[int, ...]:
        return self.widths[: self.depth]

    @property
    def macs(self) -> int:
        """Multiply-adds per row of the padded network (pass-through layers included)."""
        used = self._used
        return sum(a * b for a, b in zip([self.n_inputs, *used], [*used, self.n_outputs], strict=True))

    @property
    def units(self) -> int:
        return sum(self._used)

    @property
    def parameters(self) -> int:
        return self.macs + self.units + self.n_outputs


COST_MODELS = {
    "cpu": DeviceCosts(
        alone=CostModel(step=2.5e-4, member_step=0.0, run_step=4.5e-5, mac=0.0, unit=4.3e-8, parameter=0.0,
                        member_parameter=0.0),
        stacked=CostModel(step=1.9e-4, member_step=0.0, run_step=4.3e-5, mac=3.5e-11, unit=2.6e-8,
                          parameter=5.1e-9, member_parameter=2.6e-9),
        stack_floats=2**17,  # 4 such tensors (inputs, pre-activations, activations, masks) fill a 2 MiB L2 cache
        stack_margin=1.25,
    ),
    "cuda": DeviceCosts(*[CostModel(step=2.5e-3, member_step=0.0, run_step=2e-5, mac=5e-14, unit=1e-12,
                                    parameter=1e-12, member_parameter=0.0)] * 2),
}  # fmt: skip
"""The CUDA figures are estimates (no GPU measured): launches dominate, arithmetic is nearly free."""


def auto_batch_trials(device: str) -> int:
    """The K `--batch-trials auto` picks for a device (`cpu`, `cuda`, `cuda:N`, `mps`, `auto`).

    On a CPU, 1: every trial already trains with the stacked step (a stack of one, the `stacked`
    trainer), and stacking K of them measured 1.01x to 1.17x the trials per minute of one at a time
    (benchmarks/population.py, default space, K = 4, 16, 64 on digits and on a 50,000-row set, 2-core
    CPU; significant only at K = 64 on digits). A batch also makes a model-based strategy propose K
    trials before it learns from any of them. A small network's step alone on a CPU is already mostly
    the arithmetic a stack must also do: benchmarks/stacking_ceiling.py bounds any stacking's gain there
    at about 1.5x. On a GPU launches dominate a small network's step, so a large stack is nearly free: 64
    (not yet measured); Apple MPS in between."""
    if device in ("auto", ""):
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return AUTO_BATCH_TRIALS.get(torch.device(device).type, AUTO_BATCH_TRIALS["cpu"])


def member_layers(params: Mapping[str, Any], n_inputs: int, n_outputs: int, depth: int) -> tuple[Shapes, list[bool]]:
    """(outputs, inputs) of each linear layer of the network `params` describes in a stack `depth` hidden
    layers deep, and which are its own: a shallower network gets pass-through layers before its output."""
    widths = [n_inputs, *hidden_widths(params["n_hidden"], params["n_neurons"], params["layer_shape"])]
    shapes = list(zip(widths[1:], widths[:-1], strict=True))
    missing = depth - len(shapes)
    shapes += [(widths[-1], widths[-1])] * missing + [(n_outputs, widths[-1])]
    return shapes, [True] * params["n_hidden"] + [False] * missing + [True]


def layer_shapes(params: Mapping[str, Any], n_inputs: int, n_outputs: int) -> Shapes:
    """(outputs, inputs) of each linear layer of the network `params` describes."""
    return member_layers(params, n_inputs, n_outputs, params["n_hidden"])[0]


def member_widths(params: Mapping[str, Any], depth: int) -> list[int]:
    """A member's hidden widths in a stack `depth` layers deep (its pass-through layers keep its last width)."""
    widths = hidden_widths(params["n_hidden"], params["n_neurons"], params["layer_shape"])
    return widths + [widths[-1]] * (depth - len(widths))


def stack_groups(
    params: Sequence[Mapping[str, Any]], n_train: int, n_inputs: int, n_outputs: int, device_type: str = "cpu"
) -> list[list[int]]:
    """Which members train together: lists of indices into `params` (a list of one is a stack of one).

    Members share a stack only if their batch sizes divide each other (a common micro-batch): the batch
    sizes form chains, each size dividing the next. Each chain is cut into blocks of consecutive sizes,
    and each block's members (sorted by size) into buckets, both where the cost model says a separate
    stack costs less than padding or extra micro-batches (dynamic programming at both levels: a block of
    large batches alone takes few micro-batches)."""
    model = COST_MODELS.get(device_type, COST_MODELS["cpu"])
    size_of = [min(int(p["batch_size"]), n_train) for p in params]
    chains: list[list[int]] = []
    for size in sorted(set(size_of)):
        chain = next((c for c in chains if size % c[-1] == 0), None)
        chain.append(size) if chain is not None else chains.append([size])
    groups: list[list[int]] = []
    for chain in chains:
        best: list[tuple[float, list[list[int]]]] = [(0.0, [])]
        for end in range(1, len(chain) + 1):
            options = []
            for start in range(end):
                members = [i for i, size in enumerate(size_of) if size in chain[start:end]]
                cost, buckets = _buckets(members, params, n_train, n_inputs, n_outputs, model)
                options.append((best[start][0] + cost, best[start][1] + buckets))
            best.append(min(options, key=lambda option: option[0]))
        groups += best[-1][1]
    return groups


def _buckets(
    members: list[int], params: Sequence[Mapping[str, Any]], n: int, n_in: int, n_out: int, model: DeviceCosts
) -> tuple[float, list[list[int]]]:
    """The cheapest cut of `members` (sorted by their own size) into contiguous buckets, and its cost."""
    depth = max(params[i]["n_hidden"] for i in members)
    empty = StackFeatures(n, n_in, n_out)

    def own_size(i: int) -> tuple[int, int]:
        p = params[i]
        alone = empty.add(member_widths(p, p["n_hidden"]), p["n_hidden"], p["batch_size"], p["activation"])
        return alone.macs, p["n_hidden"]

    order = sorted(members, key=own_size)
    best = [0.0] + [math.inf] * len(order)
    cut = [0] * (len(order) + 1)
    for start in range(len(order)):
        features = empty
        for end in range(start + 1, len(order) + 1):
            p = params[order[end - 1]]
            features = features.add(member_widths(p, depth), p["n_hidden"], int(p["batch_size"]), p["activation"])
            cost = model.stack(features)
            if best[start] + cost < best[end]:
                best[end], cut[end] = best[start] + cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return best[-1], groups[::-1]


@dataclass(eq=False)
class Member:
    """One configuration of a population: its run (initial state, data order, bookkeeping), its trial
    context, the epoch it trains to, and where its checkpoint goes. `outcome` is None once it trained
    to the end (or stopped early), or the exception that ended it (`TrialPruned`, divergence)."""

    run: TrainingRun
    ctx: TrialContext
    until: int
    checkpoint: Path | None
    outcome: BaseException | None = None
    best_row: torch.Tensor | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.outcome is not None or self.run.stopped or self.run.epoch >= self.until


def train_population(members: Sequence[Member], dropout_seed: int = 0) -> None:
    """Train members (one `stack_groups` bucket) as one stack until each is done; afterwards every member's
    run holds its final state (as `TrainingRun.train_epoch` would have left it) and its checkpoint is saved."""
    waiting = []
    for member in members:
        if member.done:  # e.g. its checkpoint is already at this budget
            finish(member)
        else:
            waiting.append(member)
    if waiting:
        Population(waiting, dropout_seed).train()


def finish(member: Member) -> None:
    if member.checkpoint is not None:
        save_checkpoint(member.checkpoint, [member.run], member.run.params)


class Population:
    """The stacked state of the members still training: parameters, optimiser state and per-member rates.

    Members are held in order of batch size, so the members whose batch ends at a micro-batch are the
    first rows of the stack (batch sizes of a stack divide each other), then of activation and depth, so
    that runs of members sharing an activation are long (`stacked.LayerPlan`)."""

    def __init__(self, members: Sequence[Member], dropout_seed: int) -> None:
        self.dropout_seed = dropout_seed
        self._stack(members)

    def _stack(self, members: Sequence[Member]) -> None:
        """Build the stack from the members' runs (their weights, optimiser state and best weights)."""
        members = sorted(members, key=stack_order)
        first = members[0].run
        self.members = list(members)
        self.device = first.device
        self.task, self.n_classes, self.y_mean, self.y_std = first.task, first.n_classes, first.y_mean, first.y_std
        self.x_train, self.y_train = first.x_train, first.y_train
        self.x_valid, self.y_valid = first.x_valid, first.y_valid
        self.generator = torch.Generator(device=self.device)
        n_inputs, n_outputs = self.x_train.shape[1], first.model[-1].out_features
        self.depth = max(m.run.params["n_hidden"] for m in members)
        self.layers = [member_layers(m.run.params, n_inputs, n_outputs, self.depth) for m in members]
        self.layout = FlatLayout([shapes for shapes, _ in self.layers])
        self.flat = torch.stack([self._row(i, [p.detach() for p in m.run.model.parameters()], True)
                                 for i, m in enumerate(members)])  # fmt: skip
        trained = torch.stack([self.layout.mask(s, self.device, t) for s, t in self.layers])
        self.mask = None if bool(trained.all()) else trained
        for index, member in enumerate(members):
            if member.run.best_state is not None:
                member.best_row = self._row(index, list(member.run.best_state.values()), True)
        m = torch.stack([self._state_row(i, 0) for i in range(len(members))])
        v = torch.stack([self._state_row(i, 1) for i in range(len(members))])
        steps = torch.tensor([self._steps(member) for member in members])
        params = [member.run.params for member in members]
        self.optimizer = StackedOptimizer(params, trained * self.layout.weight_mask(self.device), m, v, steps)
        self.plans = layer_plans(*self._functions(slice(None), dropout=True), self.device)

    # Packing members into rows and back
    def _row(self, index: int, tensors: list[torch.Tensor], weights: bool) -> torch.Tensor:
        """A member's tensors (weight, bias of each of its own layers) as a stack row; its pass-through
        layers get identity weights (`weights`) or zeros (optimiser state)."""
        full, own = [], iter(zip(tensors[0::2], tensors[1::2], strict=True))
        for (out, inp), trained in zip(*self.layers[index], strict=True):
            if trained:
                full += next(own)
            else:
                full += [torch.eye(out) if weights else torch.zeros(out, inp), torch.zeros(out)]
        return self.layout.row([t.detach().to(self.device) for t in full], self.device)

    def _state_row(self, index: int, moment: int) -> torch.Tensor:
        run = self.members[index].run
        name = STATE_NAMES[FAMILIES[run.params["optimizer"]]][moment]
        state = run.optimizer.state
        return self._row(index, [_state(state, p, name) for p in run.model.parameters()], False)

    @staticmethod
    def _steps(member: Member) -> float:
        first = next(iter(member.run.model.parameters()))
        return float(member.run.optimizer.state[first].get("step", 0.0)) if first in member.run.optimizer.state else 0.0

    def _own(self, index: int, row: torch.Tensor) -> list[torch.Tensor]:
        """A member's own tensors (weight, bias per layer, its sizes) from a stack row."""
        shapes, trained = self.layers[index]
        values = self.layout.split(row, shapes)
        return [t for pos, keep in enumerate(trained) if keep for t in values[2 * pos : 2 * pos + 2]]

    def _unpack(self, index: int) -> None:
        """Write a member's stacked state back into its run: weights, optimiser state, schedule, best weights."""
        member = self.members[index]
        run = member.run
        model_params = list(run.model.parameters())
        with torch.no_grad():
            for param, value in zip(model_params, self._own(index, self.flat[index]), strict=True):
                param.copy_(value)
        family = FAMILIES[run.params["optimizer"]]
        if run.params["optimizer"] != "sgd":  # plain SGD keeps no state in torch.optim
            for name, stacked in zip(STATE_NAMES[family], (self.optimizer.m, self.optimizer.v), strict=True):
                if name is not None:
                    for param, value in zip(model_params, self._own(index, stacked[index]), strict=True):
                        run.optimizer.state[param][name] = value
            if family != "sgd":
                step = float(self.optimizer.steps[index])
                for param in model_params:
                    run.optimizer.state[param]["step"] = torch.tensor(step)
        factor = run.scheduler.lr_lambdas[0]
        run.scheduler.last_epoch = run.epoch
        for group, base in zip(run.optimizer.param_groups, run.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor(run.epoch)
        run.scheduler._last_lr = [group["lr"] for group in run.optimizer.param_groups]
        if member.best_row is not None:
            names = list(run.model.state_dict())
            run.best_state = dict(zip(names, self._own(index, member.best_row), strict=True))

    # Training
    def train(self) -> None:
        while self.members:
            losses = self._train_epoch()
            metrics = self._valid_metrics()
            for index, (member, loss) in enumerate(zip(self.members, losses, strict=True)):
                self._after_epoch(index, member, loss, metrics[index])
            self._drop_finished()

    def _learning_rates(self) -> torch.Tensor:
        rates = [m.run.params["learning_rate"] * m.run.scheduler.lr_lambdas[0](m.run.epoch) for m in self.members]
        return torch.tensor(rates, device=self.device).unsqueeze(1)

    def _schedule(self, n: int, micro: int, accumulate: bool) -> tuple[list[Any], list[int]]:
        """Per micro-batch: the factor of each member's summed loss (1 / its batch's rows: `[K, 1, 1]`, or one
        number when no member accumulates) and how many members (the first rows) end a batch there and step."""
        sizes = [m.run.batch_size for m in self.members]
        starts = range(0, n, micro)
        if not accumulate:
            return [1 / (min(start + micro, n) - start) for start in starts], [len(sizes)] * len(starts)
        scales, counts = [], []
        for start in starts:
            end = min(start + micro, n)
            scales.append([1 / (min(start // b * b + b, n) - start // b * b) for b in sizes])
            counts.append(sum(end % b == 0 or end == n for b in sizes))
        return list(torch.tensor(scales, device=self.device).view(len(counts), -1, 1, 1)), counts

    @torch.no_grad()
    def _train_epoch(self) -> list[float]:
        k, n = len(self.members), len(self.y_train)
        lr = self._learning_rates()
        micro = self.members[0].run.batch_size
        accumulate = any(m.run.batch_size != micro for m in self.members)
        scales, counts = self._schedule(n, micro, accumulate)
        grad = torch.zeros_like(self.flat)
        grads = self.layout.views(grad)
        layers = self.layout.views(self.flat)
        order = torch.stack([torch.randperm(n, device=self.device, generator=m.run.generator) for m in self.members])
        self.generator.manual_seed(epoch_seed(self.dropout_seed, self.members[0].run.epoch))
        self.optimizer.start_epoch(self.flat, grad, lr, counts, self.mask, accumulate)
        losses = []
        for first, last in self._chunks(n, micro):  # inputs and dropout masks drawn for a few micro-batches at once
            rows = order[:, first:last].reshape(-1)
            x_chunk = self.x_train.index_select(0, rows).view(k, last - first, -1).split(micro, 1)
            y_chunk = self.y_train.index_select(0, rows).view(k, last - first).split(micro, 1)
            mask_chunk = [
                _per_micro_batch(plan.dropout.masks((k, last - first, weight.shape[2]), self.generator), micro)
                if plan.dropout
                else [None] * len(x_chunk)
                for plan, (weight, _) in zip(self.plans, layers, strict=False)
            ]
            for offset, (x, y) in enumerate(zip(x_chunk, y_chunk, strict=True)):
                step = first // micro + offset
                out, tape = forward(layers, x, self.plans, [masks[offset] for masks in mask_chunk])
                loss, grad_out = loss_gradient(self.task, out, y, scales[step])
                backward(layers, grads, self.plans, tape, grad_out, accumulate)
                if counts[step]:
                    self.optimizer.step(step)
                losses.append(loss)
        self.optimizer.end_epoch()
        rows_per_step = torch.tensor([min(micro, n - start) for start in range(0, n, micro)], device=self.device)
        return (torch.stack(losses).mul_(rows_per_step.unsqueeze(1)).sum(0) / n).tolist()

    def _chunks(self, n: int, micro: int) -> list[tuple[int, int]]:
        """Row ranges of whole micro-batches whose inputs and masks hold at most `CHUNK_FLOATS` floats."""
        per_row = len(self.members) * (self.x_train.shape[1] + 2 * sum(o for o, _ in self.layout.shapes[:-1]))
        rows = max(micro, CHUNK_FLOATS // per_row // micro * micro)
        return [(start, min(start + rows, n)) for start in range(0, n, rows)]

    @torch.no_grad()
    def _valid_metrics(self) -> list[dict[str, float]]:
        k = len(self.members)
        if not len(self.y_valid):
            return [{} for _ in range(k)]
        widest = max(o for o, _ in self.layout.shapes)
        out: list[dict[str, float]] = []
        for chunk in member_chunks(k, len(self.y_valid), widest):
            layers = self.layout.views(self.flat[chunk])
            plans = self.plans if chunk == slice(0, k) else layer_plans(*self._functions(chunk), self.device)
            logits, _ = forward(layers, self.x_valid, plans)
            rows = member_metrics(self.task, logits, self.y_valid, self.n_classes, self.y_mean, self.y_std)
            out += [{f"valid_{key}": value for key, value in row.items()} for row in rows]
        return out

    def _functions(self, chunk: slice, dropout: bool = False) -> tuple[list[list[str]], list[float]]:
        """`layer_plans`' arguments for a slice of the members: their function per position, dropout rates."""
        params = [m.run.params for m in self.members[chunk]]
        functions = [[p["activation"] if i < p["n_hidden"] else IDENTITY for i in range(self.depth)] for p in params]
        return functions, [p["dropout"] if dropout else 0.0 for p in params]

    def _after_epoch(self, index: int, member: Member, train_loss: float, valid: dict[str, float]) -> None:
        """What `TrainingRun.train_epoch` and the backend's report callback do after an epoch, for one member."""
        run = member.run
        run.epoch += 1
        if not math.isfinite(train_loss):  # this member fails alone; no checkpoint, as in the single-model path
            member.outcome = run.divergence(train_loss)
            return
        metrics = {"train_loss": train_loss, **valid}
        if run.record_epoch(metrics):
            member.best_row = self.flat[index].clone()
        member.ctx.report(run.epoch, metrics)
        if member.ctx.should_stop():
            member.outcome = TrialPruned()
        if member.done:  # trained to its budget, stopped early, or pruned
            self._unpack(index)
            finish(member)

    def _drop_finished(self) -> None:
        keep = [i for i, m in enumerate(self.members) if not m.done]
        if len(keep) == len(self.members) or not keep:
            self.members = [self.members[i] for i in keep]
            return
        survivors = [self.members[i] for i in keep]
        depth = max(m.run.params["n_hidden"] for m in survivors)
        n_inputs, n_outputs = self.x_train.shape[1], self.layout.shapes[-1][0]
        smaller = FlatLayout([member_layers(m.run.params, n_inputs, n_outputs, depth)[0] for m in survivors])
        if smaller.size < REPACK_BELOW * self.layout.size:  # hand the state back to the runs and restack
            for index in keep:
                self._unpack(index)
            self._stack(survivors)
            return
        rows = torch.tensor(keep, device=self.device, dtype=torch.long)
        self.members = survivors
        self.layers = [self.layers[i] for i in keep]
        self.flat = self.flat[rows]
        self.mask = self.mask[rows] if self.mask is not None else None
        self.optimizer.keep(rows)
        self.plans = layer_plans(*self._functions(slice(None), dropout=True), self.device)


def _per_micro_batch(mask: tuple[torch.Tensor, torch.Tensor | None], micro: int) -> list[Any]:
    """A chunk's dropout masks (multiplier, addend) cut into its micro-batches."""
    multiplier, addend = mask
    parts = multiplier.split(micro, 1)
    return list(zip(parts, addend.split(micro, 1) if addend is not None else [None] * len(parts), strict=True))


def epoch_seed(dropout_seed: int, epoch: int) -> int:
    """The dropout generator's seed for an epoch: the same epoch draws the same masks however it was reached."""
    return int(np.random.SeedSequence([abs(dropout_seed), epoch]).generate_state(1)[0])


def stack_order(member: Member) -> tuple[int, str, int]:
    return member.run.batch_size, member.run.params["activation"], -member.run.params["n_hidden"]


def _state(state: Mapping[torch.Tensor, dict[str, Any]], param: torch.Tensor, name: str | None) -> torch.Tensor:
    """A parameter's torch.optim state tensor `name`, zeros where the optimiser has none (yet)."""
    value = state[param].get(name) if name is not None and param in state else None
    return value if isinstance(value, torch.Tensor) else torch.zeros_like(param)
