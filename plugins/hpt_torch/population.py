"""Population training: many configurations of one architecture trained at once as a stacked model.

Tiny tabular MLPs leave the hardware mostly idle; each trial pays Python and kernel-launch overhead
for a few small matrix products. Stacked, K members cost one forward, one backward and one optimiser
step per batch. Each member still trains as it would alone: its own initial weights and data order
(its `TrainingRun`, built with its own seed), its own learning rate, schedule, momentum, L1, L2 and
dropout rate, its own early stopping, its own divergence (a non-finite training loss fails that
member only), its own reports, pruning and checkpoint. Finished members leave the stack, so the
survivors' epochs get cheaper. Dropout masks come from one generator shared by the stack, so a
member with dropout follows a different (equally random) mask sequence than it would alone.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hpt.backend import TrialContext, TrialPruned

from hpt_torch.network import hidden_widths
from hpt_torch.stacked import FlatLayout, Shapes, forward, member_chunks, member_losses, member_metrics
from hpt_torch.stacked_optim import FAMILIES, STATE_NAMES, StackedOptimizer
from hpt_torch.training import TrainingRun, save_checkpoint


def group_key(params: Mapping[str, Any], n_train: int) -> Hashable:
    """Members with equal keys train in one stack: same depth, activation, batch size (so the same steps
    per epoch) and update rule. Widths may differ (they are padded)."""
    batch_size = min(int(params["batch_size"]), n_train)
    return params["n_hidden"], params["activation"], batch_size, FAMILIES[params["optimizer"]]


def layer_shapes(params: Mapping[str, Any], n_inputs: int, n_outputs: int) -> Shapes:
    """(outputs, inputs) of each linear layer of the network `params` describes."""
    widths = [n_inputs, *hidden_widths(params["n_hidden"], params["n_neurons"], params["layer_shape"]), n_outputs]
    return list(zip(widths[1:], widths[:-1], strict=True))


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
    """Train members that share a `group_key` as one stack until each is done; afterwards every member's
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
    """The stacked state of the members still training: parameters, optimiser state and per-member rates."""

    def __init__(self, members: Sequence[Member], dropout_seed: int) -> None:
        first = members[0].run
        self.members = list(members)
        self.device = first.device
        self.task, self.n_classes, self.y_mean, self.y_std = first.task, first.n_classes, first.y_mean, first.y_std
        self.x_train, self.y_train, self.x_valid, self.y_valid = (
            first.x_train,
            first.y_train,
            first.x_valid,
            first.y_valid,
        )
        self.batch_size = first.batch_size
        self.activation = first.params["activation"]
        self.family = FAMILIES[first.params["optimizer"]]
        n_inputs, n_outputs = self.x_train.shape[1], first.model[-1].out_features
        self.shapes = [layer_shapes(m.run.params, n_inputs, n_outputs) for m in members]
        self.layout = FlatLayout(self.shapes)
        self.flat = torch.stack([self._row(list(m.run.model.parameters())) for m in members])
        self.mask = torch.stack([self.layout.mask(s, self.device) for s in self.shapes]) if self.layout.padded else None
        for member in members:
            if member.run.best_state is not None:
                member.best_row = self._row(list(member.run.best_state.values()))
        states = {name: torch.stack([self._state_row(m, name) for m in members]) for name in STATE_NAMES[self.family]}
        steps = torch.tensor([self._steps(m) for m in members])
        params = [m.run.params for m in members]
        self.optimizer = StackedOptimizer(self.family, params, self.layout.weight_mask(self.device), states, steps)
        rates = torch.tensor([p["dropout"] for p in params], device=self.device)
        self.dropout = rates if bool(rates.any()) else None
        self.generator = torch.Generator(device=self.device).manual_seed(dropout_seed)
        self._leaves = self._make_leaves()

    # Packing members into rows and back
    def _row(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return self.layout.row([t.detach() for t in tensors], self.device)

    def _state_row(self, member: Member, name: str) -> torch.Tensor:
        state = member.run.optimizer.state
        return self._row([state[p].get(name, torch.zeros_like(p)) for p in member.run.model.parameters()])

    @staticmethod
    def _steps(member: Member) -> float:
        first = next(iter(member.run.model.parameters()))
        return float(member.run.optimizer.state[first].get("step", 0.0)) if first in member.run.optimizer.state else 0.0

    def _unpack(self, index: int) -> None:
        """Write a member's stacked state back into its run: weights, optimiser state, schedule, best weights."""
        member, shapes = self.members[index], self.shapes[index]
        run = member.run
        model_params = list(run.model.parameters())
        with torch.no_grad():
            for param, value in zip(model_params, self.layout.split(self.flat[index], shapes), strict=True):
                param.copy_(value)
        if run.params["optimizer"] != "sgd":  # plain SGD keeps no state in torch.optim
            for name, stacked in self.optimizer.states.items():
                for param, value in zip(model_params, self.layout.split(stacked[index], shapes), strict=True):
                    run.optimizer.state[param][name] = value
            if self.family != "sgd":
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
            run.best_state = dict(zip(names, self.layout.split(member.best_row, shapes), strict=True))

    def _make_leaves(self) -> list[torch.Tensor]:
        """Gradient leaves viewing `flat`'s storage, so the in-place optimiser step updates them too."""
        return [t.detach().requires_grad_() for pair in self.layout.views(self.flat) for t in pair]

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

    def _train_epoch(self) -> list[float]:
        k, n = len(self.members), len(self.y_train)
        lr = self._learning_rates()
        order = torch.stack([torch.randperm(n, device=self.device, generator=m.run.generator) for m in self.members])
        pairs = list(zip(self._leaves[0::2], self._leaves[1::2], strict=True))
        total = torch.zeros(k, device=self.device)
        for start in range(0, n, self.batch_size):
            rows = order[:, start : start + self.batch_size]
            out = forward(pairs, self.x_train[rows], self.activation, self.dropout, self.generator)
            losses = member_losses(self.task, out, self.y_train[rows])
            grads = torch.autograd.grad(losses.sum(), self._leaves)
            grad = torch.cat([g.reshape(k, -1) for g in grads], 1)
            if self.mask is not None:
                grad.mul_(self.mask)
            self.optimizer.step(self.flat, grad, lr)
            total += losses.detach() * rows.shape[1]
        return [value / n for value in total.tolist()]

    @torch.no_grad()
    def _valid_metrics(self) -> list[dict[str, float]]:
        k = len(self.members)
        if not len(self.y_valid):
            return [{} for _ in range(k)]
        widest = max(o for o, _ in self.layout.shapes)
        out: list[dict[str, float]] = []
        for chunk in member_chunks(k, len(self.y_valid), widest):
            layers = self.layout.views(self.flat[chunk])
            logits = forward(layers, self.x_valid, self.activation)
            rows = member_metrics(self.task, logits, self.y_valid, self.n_classes, self.y_mean, self.y_std)
            out += [{f"valid_{key}": value for key, value in row.items()} for row in rows]
        return out

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
        if len(keep) == len(self.members):
            return
        rows = torch.tensor(keep, device=self.device, dtype=torch.long)
        self.members = [self.members[i] for i in keep]
        self.shapes = [self.shapes[i] for i in keep]
        self.flat = self.flat[rows]
        self.mask = self.mask[rows] if self.mask is not None else None
        self.dropout = self.dropout[rows] if self.dropout is not None else None
        self.optimizer.keep(rows)
        self._leaves = self._make_leaves()
