"""Trials as the backend trains them: a trial is one member, or one per fold, of an engine stack; it reports the
mean of its members' metrics each epoch, is pruned or fails as a whole, and keeps its members' states in one
checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hpt.backend import TrialContext, TrialPruned
from hpt.errors import HptError

from hpt_torch.engine import DeviceData, Member, Stack

CHECKPOINT_FORMAT = 2
"""Checkpoints of another format (an older engine's) are not continued from."""


def divergence(member: Member) -> HptError:
    """The error that fails a trial whose training loss is no longer finite."""
    return HptError(
        f"training diverged: the training loss is {member.diverged} at epoch {member.state.epoch}; "
        f"lower learning_rate (now {member.params['learning_rate']:g})"
    )


@dataclass(eq=False)
class TrialRun:
    """One trial: its members (one, or one per fold), its context (reports, pruning), its checkpoint file. After
    training, `outcome` is None (it trained to its budget or stopped early) or the exception that ended it."""

    params: dict[str, Any]
    ctx: TrialContext
    members: list[Member]
    checkpoint: Path | None = None
    resumes: bool = False
    """Whether it continues from its checkpoint (a trial with a budget: a promotion continues where it stopped)."""
    outcome: BaseException | None = None

    def report(self) -> None:
        """Report the mean of the members' latest metrics (a member that stopped early contributes its last) at
        the furthest epoch; end the trial on divergence or when its context says stop (pruning)."""
        diverged = next((m for m in self.members if m.diverged is not None), None)
        if diverged is not None:
            self.outcome = divergence(diverged)
            return
        epoch = max(m.state.epoch for m in self.members)
        self.ctx.report(epoch, mean_metrics([m.state.last_metrics for m in self.members]))
        if self.ctx.should_stop():
            self.outcome = TrialPruned()


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Key-wise mean of metric dicts (the k-fold average)."""
    if len(rows) == 1:
        return dict(rows[0])
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def train_trials(
    trials: Sequence[TrialRun], data: DeviceData, monitor: str, direction: str, dropout_seed: int
) -> Stack:
    """Train trials as one stack of all their members, each trial continued from its checkpoint where that holds
    its configuration at no more than its budget; save each trial's checkpoint at the end (not a diverged one's).
    """
    members = [m for t in trials for m in t.members]
    stack = Stack(members, data, monitor, direction, dropout_seed)
    position = {id(m): i for i, m in enumerate(stack.members)}
    for trial in trials:
        saved = read_checkpoint(trial.checkpoint, trial.params) if trial.resumes else None
        fits = saved is not None and len(saved["members"]) == len(trial.members)
        if fits and max(s["epoch"] for s in saved["members"]) <= min(m.until for m in trial.members):
            for member, state in zip(trial.members, saved["members"], strict=True):
                stack.load_member(position[id(member)], state)
    owner = {id(m): t for t in trials for m in t.members}

    def on_epoch(trained: list[int]) -> None:
        for trial in {id(owner[id(stack.members[i])]): owner[id(stack.members[i])] for i in trained}.values():
            trial.report()
            if trial.outcome is not None:
                for member in trial.members:
                    stack.finish(position[id(member)])

    stack.train(on_epoch)
    saving = [t for t in trials if t.checkpoint is not None and not isinstance(t.outcome, HptError)]
    if saving:
        states = iter(stack.member_states([position[id(m)] for t in saving for m in t.members]))
        for trial in saving:
            save_checkpoint(trial.checkpoint, trial.params, [next(states) for _ in trial.members])
    return stack


def save_checkpoint(path: Path, params: Mapping[str, Any], members: Sequence[Mapping[str, Any]]) -> None:
    """A trial's members' states (`Stack.member_state`), to continue them exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "params": dict(params), "members": list(members)}, path)


def read_checkpoint(path: Path | None, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path` if it holds this engine's state of the same configuration."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or state.get("params") != dict(params):
        return None
    return state
