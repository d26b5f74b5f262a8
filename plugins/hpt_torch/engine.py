"""The mlp backend's one training engine: K networks trained at once as one stack (`Stack`).

Every training path uses it. A trial alone is a stack of one; a trial with k folds is a stack of k members that
see different folds; `hpt run --batch-trials K` stacks the K trials of a batch (and their folds); the
scikit-learn estimators and the LR range test train a stack of one. The engine owns all state (weights and
optimiser moments as rows of `[K, P]` tensors, early stopping, the epoch each member is at) and its checkpoints;
no `nn.Module` or `torch.optim` object is built to train (`network.build_mlp` exports a trained network).

Members may differ in every hyperparameter (`stacked`: width and depth padded and masked, activations by runs;
`stacked_optim`: one update rule with per-member coefficients; batch sizes share a micro-batch, the greatest
common divisor of theirs, and each member accumulates its batch's gradient and steps when its batch ends).
Each trains as it would alone: its own initial weights (`network.initial_weights` from its seed), its own data
order, rates, schedule, regularisation, early stopping, divergence (a non-finite training loss fails its trial
only), reports, pruning and checkpoint. Dropout masks come from one generator for the stack, seeded afresh each
epoch, so a stack of one continued from a checkpoint draws the masks it would have drawn training straight on.

One epoch's host work does not depend on K (built for a GPU, where launches and synchronisation, not
arithmetic, cost a small network's step):
- data lives on the device; each member's order is a counter-based hash of (seed, epoch, row) sorted on the
  device, so there is no generator per member and no per-member Python in an epoch;
- each member's rate at every epoch is tabled when the stack is built, and looked up per epoch in one gather;
- a member that finishes is masked (rate 0, no step), not repacked;
- early stopping's comparison and the best weights' copy happen on the device; the train losses, validation
  metrics and improvement flags are read in one transfer per epoch (`_read`), the epoch's only synchronisation.
On CUDA, the fixed-shape micro-batch step is replayed from a CUDA graph (`graphs.StepGraph`).
`tests/test_torch_structure.py` counts one epoch's operations and synchronisations for K = 4 to 256.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hpt_torch import graphs
from hpt_torch.datasets import Fold
from hpt_torch.metrics import member_metrics, metric_names
from hpt_torch.network import hidden_widths, initial_weights
from hpt_torch.schedule import SCHEDULE_CODES, epoch_orders, epoch_seed, lr_factors
from hpt_torch.stacked import IDENTITY, FlatLayout, Shapes, backward, forward, layer_plans, loss_gradient
from hpt_torch.stacked_optim import StackedOptimizer

CHUNK_FLOATS = {"cpu": 2**21, "cuda": 2**18}
"""Per member, the most floats of training inputs and dropout masks drawn at once (a few micro-batches: fewer,
larger kernels); per member, so the number of draws per epoch does not depend on K."""
VALID_FLOATS = {"cpu": 2**24, "cuda": 2**28}
"""The most floats of one validation forward pass: more members are evaluated in several passes."""
AUTO_BATCH_TRIALS = {"cpu": 1, "cuda": 64, "mps": 16}
"""`--batch-trials auto` per device type (see `auto_batch_trials`)."""


def auto_batch_trials(device: str) -> int:
    """The K `--batch-trials auto` picks for a device (`cpu`, `cuda`, `cuda:N`, `mps`, `auto`).

    On a CPU, 1: a network's step there is mostly arithmetic that a stack must also do (stacking measured
    1.0x to 1.17x, and `benchmarks/stacking_ceiling.py` bounds any stacking's gain at about 1.5x), and a batch
    makes a model-based strategy propose K trials before it learns from any. On a GPU, launches and
    synchronisation dominate a small network's step and a stack's host work does not grow with K: 64."""
    if device in ("auto", ""):
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return AUTO_BATCH_TRIALS.get(torch.device(device).type, AUTO_BATCH_TRIALS["cpu"])


@dataclass
class DeviceData:
    """Folds on the device: every fold's training rows one after another (and its validation rows), with where
    each fold starts and how many rows it has. Members index these; nothing is copied per member."""

    task: str
    n_classes: int
    n_inputs: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    train_offsets: list[int]
    train_sizes: list[int]
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    valid_offsets: list[int]
    valid_sizes: list[int]
    y_mean: list[float]
    y_std: list[float]

    @classmethod
    def from_folds(cls, folds: Sequence[Fold], task: str, n_classes: int, device: torch.device) -> DeviceData:
        def joined(name: str) -> torch.Tensor:
            return torch.as_tensor(np.concatenate([getattr(f, name) for f in folds]), device=device)

        def offsets(sizes: list[int]) -> list[int]:
            return [int(v) for v in np.cumsum([0, *sizes[:-1]])]

        train_sizes, valid_sizes = [len(f.y_train) for f in folds], [len(f.y_valid) for f in folds]
        return cls(task, n_classes, folds[0].x_train.shape[1], joined("x_train"), joined("y_train"),
                   offsets(train_sizes), train_sizes, joined("x_valid"), joined("y_valid"), offsets(valid_sizes),
                   valid_sizes, [float(f.y_mean) for f in folds], [float(f.y_std) for f in folds])  # fmt: skip

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.n_classes > 2 else 1

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def member_layers(params: Mapping[str, Any], n_inputs: int, n_outputs: int, depth: int) -> tuple[Shapes, list[bool]]:
    """(outputs, inputs) of each linear layer of the network `params` describes in a stack `depth` hidden
    layers deep, and which are its own: a shallower network gets pass-through layers before its output."""
    widths = [n_inputs, *hidden_widths(params["n_hidden"], params["n_neurons"], params["layer_shape"])]
    shapes = list(zip(widths[1:], widths[:-1], strict=True))
    missing = depth - len(shapes)
    shapes += [(widths[-1], widths[-1])] * missing + [(n_outputs, widths[-1])]
    return shapes, [True] * params["n_hidden"] + [False] * missing + [True]


STATE_KEYS = ("epoch", "bad_epochs", "stopped", "best_value", "best_epoch", "best_metrics", "last_metrics")


@dataclass
class MemberState:
    """A member's early-stopping bookkeeping on the host (what its trial reports and returns)."""

    epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    best_value: float | None = None
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    last_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class Member:
    """One network of a stack: its configuration, the fold it trains on, its seed, the epoch it trains to."""

    params: dict[str, Any]
    fold: int
    seed: int
    until: int
    state: MemberState = field(default_factory=MemberState)
    diverged: float | None = None
    """The non-finite training loss that ended it, if one did."""

    @property
    def active(self) -> bool:
        return self.diverged is None and not self.state.stopped and self.state.epoch < self.until


class Stack:
    """K members' state as tensors (weights, optimiser moments, best weights) and their training.

    Members are held ordered by activation and depth, so that each hidden position applies few runs of one
    function (`stacked.LayerPlan`); `members` is in that order. `monitor` is the metric early stopping
    watches (`valid_loss`, `valid_accuracy`, ...; `train_loss` when there are no validation rows)."""

    def __init__(
        self,
        members: Sequence[Member],
        data: DeviceData,
        monitor: str = "valid_loss",
        direction: str = "minimize",
        dropout_seed: int = 0,
    ) -> None:
        self.members = sorted(members, key=lambda m: (m.params["activation"], -m.params["n_hidden"]))
        self.data, self.device = data, data.device
        self.names = ("train_loss", *(f"valid_{name}" for name in metric_names(data.task)))
        self.has_valid = all(data.valid_sizes[m.fold] for m in self.members)
        self.monitor = monitor if self.has_valid else "train_loss"
        self.sign = 1.0 if direction == "minimize" else -1.0
        self.dropout_seed = dropout_seed
        self.generator = torch.Generator(device=self.device)
        device, k = self.device, len(self.members)
        self.depth = max(m.params["n_hidden"] for m in self.members)
        self.layers = [member_layers(m.params, data.n_inputs, data.n_outputs, self.depth) for m in self.members]
        self.layout = FlatLayout([shapes for shapes, _ in self.layers])
        cpu = torch.device("cpu")
        self.flat = torch.stack([self._row(i, initial_weights(m.params, data.n_inputs, data.n_outputs, m.seed), True)
                                 for i, m in enumerate(self.members)]).to(device)  # fmt: skip
        trained = torch.stack([self.layout.mask(s, cpu, t) for s, t in self.layers]).to(device)
        self.mask = None if bool(trained.all()) else trained
        self.best_flat = self.flat.clone()
        self.optimizer = StackedOptimizer([m.params for m in self.members], trained * self.layout.weight_mask(device))
        functions = [[m.params["activation"] if i < m.params["n_hidden"] else IDENTITY for i in range(self.depth)]
                     for m in self.members]  # fmt: skip
        self.plans = layer_plans(functions, [m.params["dropout"] for m in self.members], device)
        self.eval_plans = layer_plans(functions, [0.0] * k, device)
        self._per_member(data)
        self._schedule()
        self._valid_inputs()
        self._layers = self.layout.views(self.flat)
        self._grad = torch.zeros_like(self.flat)
        self._grads = self.layout.views(self._grad)
        self._total = torch.zeros(k, device=device)
        self._graph = graphs.StepGraph(self._graph_step) if graphs.enabled(device) else None

    # Building
    def _per_member(self, data: DeviceData) -> None:
        """Per-member columns on the device: what the epoch's tensor expressions read instead of Python lists."""
        device, ms = self.device, self.members

        def column(values: Sequence[float], dtype: torch.dtype = torch.float64) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device)

        warmup, horizon = [m.params["warmup_epochs"] for m in ms], [m.params["max_epochs"] for m in ms]
        span = max(*warmup, *horizon) + 1  # past both, a member's factor no longer changes
        epochs = torch.arange(span, device=device).unsqueeze(0)
        factors = lr_factors(column([SCHEDULE_CODES[m.params["lr_schedule"]] for m in ms]).unsqueeze(1),
                             column(warmup).unsqueeze(1), column(horizon).unsqueeze(1), epochs)  # fmt: skip
        self.rates = (column([m.params["learning_rate"] for m in ms]).unsqueeze(1) * factors).float()
        """Each member's learning rate at each epoch (`[K, span]`; later epochs take the last column)."""
        self.seeds = column([m.seed for m in ms], torch.int64)
        self.epochs = column([m.state.epoch for m in ms], torch.int64)
        self.sizes = column([data.train_sizes[m.fold] for m in ms], torch.int64)
        self.offsets = column([data.train_offsets[m.fold] for m in ms], torch.int64).unsqueeze(1)
        longest = max(data.train_sizes[m.fold] for m in ms)
        self.batch = [min(int(m.params["batch_size"]), longest) for m in ms]
        """Batch sizes (capped at the longest fold: a shorter fold's last batch simply ends with its rows)."""
        self.active = torch.ones(len(ms), dtype=torch.bool, device=device)
        self._active_host = [True] * len(ms)
        """Which members the device's `active` mask lets train (as last uploaded)."""
        self._ended = [False] * len(ms)
        self.best_signed = torch.full((len(ms),), math.inf, device=device)

    def _schedule(self) -> None:
        """The fixed micro-batch plan: the common micro-batch (the batch sizes' greatest common divisor), each
        member's loss factor per micro-batch (1 over its batch's rows), who steps where, and which rows are real
        (members on folds of different sizes)."""
        sizes, batch = [self.data.train_sizes[m.fold] for m in self.members], self.batch
        self.n = max(sizes)
        self.micro = math.gcd(*batch)
        starts = list(range(0, self.n, self.micro))
        self.n_steps = len(starts)
        uniform = len(set(batch)) == 1 and len(set(sizes)) == 1
        scales, stepping = [], []
        for start in starts:
            end = min(start + self.micro, self.n)
            row_scale, row_step = [], []
            for b, size in zip(batch, sizes, strict=True):
                first = start // b * b
                last = min(first + b, size)
                row_scale.append(1 / (last - first) if start < size else 0.0)
                row_step.append(float(start < size and end >= last))
            scales.append(row_scale)
            stepping.append(row_step)
        device = self.device
        if uniform and not graphs.enabled(device):  # everyone steps at every micro-batch, with the same factor
            self.scales: list[Any] = [s[0] for s in scales]
            self.stepping = None
        else:  # per member (and a tensor a captured graph can take fresh each step)
            self.scales = list(torch.tensor(scales, device=device).view(len(starts), -1, 1, 1))
            self.stepping = None if uniform else torch.tensor(stepping, device=device)
        self.accumulate = len(set(batch)) > 1
        positions = torch.arange(self.n, device=device)
        ragged = len(set(sizes)) > 1
        self.row_weight = (positions < self.sizes.unsqueeze(1)).float() if ragged else None
        per_row = self.data.n_inputs + 2 * sum(o for o, _ in self.layout.shapes[:-1])
        budget = CHUNK_FLOATS.get(device.type, CHUNK_FLOATS["cuda"])
        rows = max(self.micro, budget // per_row // self.micro * self.micro)
        self.chunks = [(start, min(start + rows, self.n)) for start in range(0, self.n, rows)]

    def _valid_inputs(self) -> None:
        """The validation rows each member is scored on: one shared set, or each member's own fold's (padded)."""
        data, ms = self.data, self.members
        folds = {m.fold for m in ms}
        if len(folds) == 1:
            (fold,) = folds
            start, size = data.valid_offsets[fold], data.valid_sizes[fold]
            self.valid = (data.x_valid[start : start + size], data.y_valid[start : start + size], None,
                          data.y_mean[fold], data.y_std[fold])  # fmt: skip
            return
        n = max(data.valid_sizes[m.fold] for m in ms)
        sizes = torch.tensor([data.valid_sizes[m.fold] for m in ms], device=self.device).unsqueeze(1)
        offsets = torch.tensor([data.valid_offsets[m.fold] for m in ms], device=self.device).unsqueeze(1)
        positions = torch.arange(n, device=self.device)
        index = offsets + torch.minimum(positions, (sizes - 1).clamp_min(0))
        column = torch.tensor([[data.y_mean[m.fold], data.y_std[m.fold]] for m in ms], device=self.device)
        weight = (positions < sizes).float()
        self.valid = (data.x_valid[index], data.y_valid[index], weight, column[:, :1], column[:, 1:])

    def _row(self, index: int, tensors: Sequence[torch.Tensor], weights: bool) -> torch.Tensor:
        """A member's tensors (weight `[out, in]` and bias of each of its own layers) as a stack row; its
        pass-through layers get identity weights (`weights`) or zeros (optimiser state)."""
        full, own = [], iter(zip(tensors[0::2], tensors[1::2], strict=True))
        for (out, inp), trained in zip(*self.layers[index], strict=True):
            if trained:
                full += next(own)
            else:
                full += [torch.eye(out) if weights else torch.zeros(out, inp), torch.zeros(out)]
        cpu = torch.device("cpu")
        return self.layout.row([t.detach().to(cpu, torch.float32) for t in full], cpu)

    def own(self, index: int, row: torch.Tensor) -> list[torch.Tensor]:
        """A member's own tensors (weight `[out, in]`, bias per layer, at its sizes) from a stack row."""
        shapes, trained = self.layers[index]
        values = self.layout.split(row, shapes)
        return [t for pos, keep in enumerate(trained) if keep for t in values[2 * pos : 2 * pos + 2]]

    def n_params(self, index: int) -> int:
        shapes, trained = self.layers[index]
        return sum(o * i + o for (o, i), keep in zip(shapes, trained, strict=True) if keep)

    # Training
    def train(self, on_epoch: Callable[[list[int]], None] | None = None) -> None:
        """Train until every member is done; after each epoch `on_epoch(trained)` gets the members (indices)
        that trained in it (their `state` updated), and may end members (`finish`)."""
        self._sync_active()
        while any(self._active_host):
            trained = self.epoch()
            if on_epoch is not None:
                on_epoch(trained)
            self._sync_active()

    def epoch(self) -> list[int]:
        """One epoch of the active members, read back once and booked on the host; the members that trained."""
        trained = [i for i, a in enumerate(self._active_host) if a]
        self.run_epoch()
        self.after_epoch(self._read(), trained)
        return trained

    def finish(self, index: int) -> None:
        """End a member's training (its trial was pruned or failed): it stays in the stack, masked."""
        self._ended[index] = True

    @torch.no_grad()
    def run_epoch(self) -> None:
        """One epoch of every active member: the micro-batch steps, then validation, early stopping's comparison
        and the best weights' copy, all on the device. Nothing here reads a value back or loops over members."""
        k, device = len(self.members), self.device
        active = self.active.unsqueeze(1)
        lr = self.rates.gather(1, self.epochs.clamp_max(self.rates.shape[1] - 1).unsqueeze(1))
        all_active = all(self._active_host)
        lr = lr if all_active else lr * active
        stepping = self.stepping
        if not all_active:
            stepping = (torch.ones(self.n_steps, k, device=device) if stepping is None else stepping) * self.active
        grad, layers = self._grad.zero_(), self._layers
        if self._graph is not None:
            self._total.zero_()
        losses: list[torch.Tensor] = []
        order = epoch_orders(self.seeds, self.epochs, self.sizes, self.n)
        rows = self.offsets + torch.minimum(order, self.sizes.unsqueeze(1) - 1)
        self.generator.manual_seed(epoch_seed(self.dropout_seed, self.members[0].state.epoch))
        self.optimizer.start_epoch(self.flat, grad, lr, stepping, self.n_steps, self.mask, self.accumulate)
        for first, last in self.chunks:  # inputs and dropout masks drawn for a few micro-batches at once
            chunk = rows[:, first:last].reshape(-1)
            x_chunk = self.data.x_train.index_select(0, chunk).view(k, last - first, -1).split(self.micro, 1)
            y_chunk = self.data.y_train.index_select(0, chunk).view(k, last - first).split(self.micro, 1)
            w_chunk = self.row_weight[:, first:last].split(self.micro, 1) if self.row_weight is not None else None
            mask_chunk = [
                _per_micro_batch(plan.dropout.masks((k, last - first, weight.shape[2]), self.generator), self.micro)
                if plan.dropout
                else [None] * len(x_chunk)
                for plan, (weight, _) in zip(self.plans, layers, strict=False)
            ]
            for offset, (x, y) in enumerate(zip(x_chunk, y_chunk, strict=True)):
                step = first // self.micro + offset
                masks = [m[offset] for m in mask_chunk]
                weight = w_chunk[offset] if w_chunk is not None else None
                update = self.optimizer.step_inputs(step)
                if self._graph is not None and x.shape[1] == self.micro:
                    flat = [t for m in masks for t in (m or (None, None))]
                    if self._graph(self.optimizer._masked, (x, y, weight, self.scales[step], *flat, *update)):
                        continue
                losses.append(self._step(x, y, weight, self.scales[step], masks, update))
        self.optimizer.end_epoch()
        self.epochs += self.active
        total = torch.stack(losses).sum(0) if losses else self._total
        if losses and self._graph is not None:  # some steps replayed (summing into _total), some not
            total = total + self._total
        self._epoch_values(total / self.sizes)

    def _step(
        self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, scale: Any, masks: Any, update: Any
    ) -> torch.Tensor:
        """One micro-batch: forward, loss gradient, backward, the optimiser's step; the members' summed losses.
        `masks` are each hidden position's dropout multiplier and addend (None without dropout), `update` the
        optimiser's per-step tensors (`StackedOptimizer.step_inputs`)."""
        out, tape = forward(self._layers, x, self.plans, masks)
        loss, grad_out = loss_gradient(self.data.task, out, y, scale, weight)
        backward(self._layers, self._grads, self.plans, tape, grad_out, self.accumulate)
        self.optimizer.apply(*update)
        return loss

    def _graph_step(self, x: Any, y: Any, weight: Any, scale: Any, *rest: Any) -> None:
        """`_step` as a CUDA graph replays it, from a flat list of tensors (`rest`: each hidden position's dropout
        multiplier and addend, then the optimiser's tensors), its loss summed into a buffer of the graph's own."""
        depth = len(self.plans)
        masks = [None if rest[2 * i] is None else (rest[2 * i], rest[2 * i + 1]) for i in range(depth)]
        self._total.add_(self._step(x, y, weight, scale, masks, rest[2 * depth :]))

    def _epoch_values(self, train_loss: torch.Tensor) -> None:
        """Validation metrics, early stopping's comparison and the best weights' copy, on the device; what the
        host needs is packed into one tensor (`_read`)."""
        valid = self.metrics(*self.valid, self.eval_plans) if self.has_valid else None
        values = train_loss.unsqueeze(1) if valid is None else torch.cat([train_loss.unsqueeze(1), valid], 1)
        watched = values[:, self.names.index(self.monitor) if self.monitor in self.names else 0] * self.sign
        improved = (watched < self.best_signed) & self.active & torch.isfinite(train_loss)
        self.best_signed = torch.where(improved, watched, self.best_signed)
        self.best_flat = torch.where(improved.unsqueeze(1), self.flat, self.best_flat)
        self._packed = torch.cat([values, improved.unsqueeze(1).float()], 1)

    def _read(self) -> list[list[float]]:
        """The epoch's one synchronisation: train loss, validation metrics and improvement flag of every member."""
        return self._packed.tolist()

    def after_epoch(self, rows: list[list[float]], trained: Sequence[int]) -> None:
        """Host bookkeeping of the members that trained this epoch: metrics, best epoch, early stopping,
        divergence."""
        width = len(self.names) if self.has_valid else 1
        for index in trained:
            member, row = self.members[index], rows[index]
            state = member.state
            state.epoch += 1
            metrics = dict(zip(self.names[:width], row[:width], strict=True))
            if not math.isfinite(metrics["train_loss"]):
                member.diverged = metrics["train_loss"]
                continue
            state.last_metrics = metrics
            if row[-1]:
                state.best_value, state.best_epoch, state.best_metrics = metrics[self.monitor], state.epoch, metrics
                state.bad_epochs = 0
            else:
                state.bad_epochs += 1
                state.stopped = state.bad_epochs >= member.params["patience"]

    def _sync_active(self) -> None:
        """Mask the members that finished (one small upload when any did)."""
        now = [not ended and m.active for ended, m in zip(self._ended, self.members, strict=True)]
        if now != self._active_host:
            self._active_host = now
            self.active = torch.tensor(now, device=self.device)

    @torch.no_grad()
    def metrics(
        self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, y_mean: Any, y_std: Any, plans: Any,
        flat: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """`[K, M]` validation metrics of every member's weights (`flat`, default the current ones) on `x`
        (`[N, d]` shared or `[K, N, d]` per member) in eval mode, in as few passes as memory allows."""
        flat = self.flat if flat is None else flat
        k = flat.shape[0]
        widest = max(o for o, _ in self.layout.shapes)
        limit = VALID_FLOATS.get(self.device.type, VALID_FLOATS["cuda"])
        step = max(1, limit // max(1, x.shape[-2] * widest))
        if step >= k:
            out, _ = forward(self.layout.views(flat), x, plans)
            return member_metrics(self.data.task, out, y, self.data.n_classes, y_mean, y_std, weight)
        parts = []
        for start in range(0, k, step):
            rows = slice(start, min(k, start + step))

            def pick(value: Any, rows: slice = rows) -> Any:
                return value[rows] if isinstance(value, torch.Tensor) and value.dim() > 1 else value

            sub = [plan.restrict(rows) for plan in plans]
            out, _ = forward(self.layout.views(flat[rows]), pick(x) if x.dim() == 3 else x, sub)
            parts.append(member_metrics(self.data.task, out, pick(y), self.data.n_classes, pick(y_mean), pick(y_std),
                                        pick(weight)))  # fmt: skip
        return torch.cat(parts)

    def score(self, x: np.ndarray, y: np.ndarray, fold: int = 0) -> list[dict[str, float]]:
        """Metrics (`loss`, `accuracy`, ...) of each member's best weights on rows standardised as `fold`'s."""
        xt, yt = torch.as_tensor(x, device=self.device), torch.as_tensor(y, device=self.device)
        values = self.metrics(
            xt, yt, None, self.data.y_mean[fold], self.data.y_std[fold], self.eval_plans, self.best_flat
        )
        return [dict(zip(metric_names(self.data.task), row, strict=True)) for row in values.cpu().tolist()]

    # State
    def member_states(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Everything needed to continue these members exactly, as CPU tensors (checkpoint entries); the stack's
        tensors are copied to the host once, whatever the number of members."""
        flat, best, m, v, steps = (t.cpu() for t in (self.flat, self.best_flat, self.optimizer.m, self.optimizer.v,
                                                       self.optimizer.steps))  # fmt: skip
        out = []
        for index in indices:
            state = self.members[index].state
            out.append({
                "weights": self.own(index, flat[index]),
                "best": self.own(index, best[index]) if state.best_value is not None else None,
                "m": self.own(index, m[index]),
                "v": self.own(index, v[index]),
                "steps": float(steps[index]),
                **{key: getattr(state, key) for key in STATE_KEYS},
            })  # fmt: skip
        return out

    @torch.no_grad()
    def load_member(self, index: int, saved: Mapping[str, Any]) -> None:
        """Continue a member from `member_state`'s output."""
        self.flat[index] = self._row(index, saved["weights"], True).to(self.device)
        self.best_flat[index] = self._row(index, saved["best"] or saved["weights"], True).to(self.device)
        self.optimizer.m[index] = self._row(index, saved["m"], False).to(self.device)
        self.optimizer.v[index] = self._row(index, saved["v"], False).to(self.device)
        self.optimizer.steps[index] = saved["steps"]
        state = self.members[index].state
        for key in STATE_KEYS:
            setattr(state, key, saved[key])
        self.epochs[index] = state.epoch
        if state.best_value is not None:
            self.best_signed[index] = self.sign * state.best_value
        self._sync_active()

    def load_weights(self, index: int, weights: Sequence[torch.Tensor]) -> None:
        """Set a member's current and best weights (to score them)."""
        self.flat[index] = self._row(index, weights, True).to(self.device)
        self.best_flat[index] = self.flat[index]

    # The LR range test
    @torch.no_grad()
    def train_batch(self, rows: torch.Tensor, rate: float) -> torch.Tensor:
        """One step of a stack of one on its fold's training rows `rows` at learning rate `rate`; the batch's
        mean loss (a tensor on the device)."""
        layers, grad = self.layout.views(self.flat), torch.zeros_like(self.flat)
        self.generator.manual_seed(epoch_seed(self.dropout_seed, int(self.optimizer.steps[0])))
        rows = rows + self.data.train_offsets[self.members[0].fold]
        x, y = self.data.x_train[rows].unsqueeze(0), self.data.y_train[rows].unsqueeze(0)
        masks = [plan.dropout.masks((1, len(rows), w.shape[2]), self.generator) if plan.dropout else None
                 for plan, (w, _) in zip(self.plans, layers, strict=False)]  # fmt: skip
        self.optimizer.start_epoch(self.flat, grad, torch.tensor([[rate]], device=self.device), None, 1, self.mask)
        out, tape = forward(layers, x, self.plans, masks)
        loss, grad_out = loss_gradient(self.data.task, out, y, 1 / len(rows))
        backward(layers, self.layout.views(grad), self.plans, tape, grad_out, False)
        self.optimizer.step(0)
        self.optimizer.end_epoch()
        return loss[0] / len(rows)


def _per_micro_batch(mask: tuple[torch.Tensor, torch.Tensor | None], micro: int) -> list[Any]:
    """A chunk's dropout masks (multiplier, addend) cut into its micro-batches."""
    multiplier, addend = mask
    parts = multiplier.split(micro, 1)
    return list(zip(parts, addend.split(micro, 1) if addend is not None else [None] * len(parts), strict=True))
