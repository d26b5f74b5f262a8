"""The one training loop behind the backend, the scikit-learn estimators and the LR range test.

Data lives on the device as tensors for the whole run; an epoch draws a permutation from the run's
own generator and slices batches by index, so there is no DataLoader and no per-batch host copy.
A run carries everything needed to stop and continue exactly (model, optimiser, schedule, early
stopping, random state): `state_dict` / `load_state_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hpt.errors import HptError

from hpt_torch.datasets import Fold
from hpt_torch.metrics import compute_metrics, loss_function
from hpt_torch.network import build_mlp

EXPONENTIAL_FLOOR = 0.01
"""The exponential schedule decays the rate to this fraction of its start over `max_epochs`."""
STEP_FACTOR, STEP_COUNT = 0.5, 4
"""The step schedule halves the rate at each quarter of `max_epochs`."""
COSINE_FLOOR = 0.01
CHECKPOINT_FILE = "mlp.pt"


def resolve_device(name: str | None) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; an unavailable device is one clear error."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HptError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HptError(f"device {name!r} is not available here (no CUDA); use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise HptError(f"device {name!r} is not available here (no MPS); use --device cpu or auto")
    return device


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generator (weight init, dropout) for a block and restore it afterwards,
    so a trial is reproducible and the caller's random state is left as it was."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def cpu_settings(threads: int) -> Iterator[None]:
    """Cap torch's intra-op CPU threads for a block (never raising the cap a process runner set), and flush
    denormal floats to zero in it.

    A small tabular network gains nothing from several threads per matrix product, and threads
    spinning on busy cores slow it down by orders of magnitude; parallel trials (`--workers`) use
    the cores better. Saturating activations and decaying moments produce floats below 1e-38, whose
    arithmetic takes a slow path on x86 CPUs: measured 3x slower training for some deep, wide networks
    of the default space. Flushed to zero they change no result that matters.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(int(threads), before)))
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if flushing:
            torch.set_flush_denormal(False)


class LRFactor:
    """Multiplier of the base learning rate at an epoch: linear warmup, then the schedule.

    The schedule's horizon is `max_epochs`, whatever budget a run trains for, so a run continued
    to a larger budget follows the same rates as one trained to that budget at once.
    """

    def __init__(self, schedule: str, warmup_epochs: int, horizon: int) -> None:
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.horizon = max(1, horizon)

    def __call__(self, epoch: int) -> float:
        warm = (epoch + 1) / (self.warmup_epochs + 1) if epoch < self.warmup_epochs else 1.0
        progress = min(epoch / self.horizon, 1.0)
        if self.schedule == "exponential":
            decay = EXPONENTIAL_FLOOR**progress
        elif self.schedule == "step":
            decay = STEP_FACTOR ** min(int(progress * STEP_COUNT), STEP_COUNT - 1)
        elif self.schedule == "cosine":
            decay = COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            decay = 1.0
        return warm * decay


def make_optimizer(params: Mapping[str, Any], model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimiser named by `params["optimizer"]`; L2 (`l2`) is weight decay on weights, not biases."""
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    groups = [{"params": weights, "weight_decay": params["l2"]}, {"params": biases, "weight_decay": 0.0}]
    lr, name = params["learning_rate"], params["optimizer"]
    if name in ("sgd", "momentum", "nesterov"):
        momentum = 0.0 if name == "sgd" else params["momentum"]
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=name == "nesterov")
    optimizers = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }
    return optimizers[name](groups, lr=lr)


class TrainingRun:
    """One network trained on one fold, an epoch at a time, with early stopping on `monitor`.

    `monitor` is a key of the epoch's metrics (`valid_loss`, `valid_accuracy`, ...); with an empty
    valid split only `train_loss` exists and is monitored. Build it inside `seeded(...)`.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        fold: Fold,
        *,
        task: str,
        n_classes: int,
        device: torch.device,
        seed: int,
        monitor: str = "valid_loss",
        direction: str = "minimize",
    ) -> None:
        self.params = dict(params)
        self.task, self.n_classes, self.device = task, n_classes, device
        self.y_mean, self.y_std = fold.y_mean, fold.y_std
        self.x_train, self.y_train = self.tensors(fold.x_train, fold.y_train)
        self.x_valid, self.y_valid = self.tensors(fold.x_valid, fold.y_valid)
        self.monitor = monitor if len(self.y_valid) else "train_loss"
        self.sign = 1.0 if direction == "minimize" else -1.0
        n_outputs = n_classes if n_classes > 2 else 1
        self.model = build_mlp(self.params, fold.x_train.shape[1], n_outputs).to(device)
        self.loss_fn = loss_function(task, n_outputs)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.l1_weights = [p for name, p in self.model.named_parameters() if name.endswith("weight")]
        self.batch_size = min(self.params["batch_size"], len(self.y_train))
        self.epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_metrics: dict[str, float] = {}

    @cached_property
    def _update_rule(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """The optimizer and its schedule, built together at first use (a run that is only scored, as
        in `final_report`, needs neither: building a process's first optimizer imports torch._dynamo)."""
        optimizer = make_optimizer(self.params, self.model)
        factor = LRFactor(self.params["lr_schedule"], self.params["warmup_epochs"], self.params["max_epochs"])
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._update_rule[0]

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        return self._update_rule[1]

    def tensors(self, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Arrays as tensors on this run's device (targets keep their dtype: class indices or floats)."""
        return torch.as_tensor(x, device=self.device), torch.as_tensor(y, device=self.device)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def train_batch(self, rows: torch.Tensor) -> torch.Tensor:
        """One optimiser step on the training rows `rows`; returns the (detached) batch loss."""
        out = self.model(self.x_train[rows])
        loss = self.loss_fn(out, self.y_train[rows])
        total = loss
        if self.params["l1"] > 0:
            total = loss + self.params["l1"] * sum(w.abs().sum() for w in self.l1_weights)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return loss.detach()

    def train_epoch(self) -> dict[str, float]:
        """Train one epoch, evaluate, update early stopping; returns the epoch's metrics."""
        self.model.train()
        n = len(self.y_train)
        order = torch.randperm(n, device=self.device, generator=self.generator)
        total = torch.zeros((), device=self.device)
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            total += self.train_batch(rows) * len(rows)
        self.scheduler.step()
        self.epoch += 1
        train_loss = float(total) / n
        if not math.isfinite(train_loss):
            raise self.divergence(train_loss)
        metrics = {"train_loss": train_loss}
        if len(self.y_valid):
            metrics.update({f"valid_{k}": v for k, v in self.evaluate(self.x_valid, self.y_valid).items()})
        if self.record_epoch(metrics):
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return metrics

    def divergence(self, train_loss: float) -> HptError:
        """The error that fails a run whose training loss is no longer finite."""
        return HptError(
            f"training diverged: the training loss is {train_loss} at epoch {self.epoch}; "
            f"lower learning_rate (now {self.params['learning_rate']:g})"
        )

    def record_epoch(self, metrics: dict[str, float]) -> bool:
        """Early-stopping bookkeeping for the epoch just trained; True when it is the best so far (the
        caller keeps its weights: `best_state`)."""
        self.last_metrics = metrics
        value = metrics[self.monitor]
        if self.best_value is None or self.sign * value < self.sign * self.best_value:
            self.best_value, self.best_epoch, self.best_metrics = value, self.epoch, dict(metrics)
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        self.stopped = self.bad_epochs >= self.params["patience"]
        return False

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Metrics of the current weights on (x, y): loss, then accuracy/F1 or RMSE/MAE/R^2."""
        self.model.eval()
        out = self.model(x)
        return compute_metrics(self.task, out, y, self.loss_fn(out, y), self.n_classes, self.y_mean, self.y_std)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Raw network outputs (logits, or standardised regression values) in eval mode."""
        self.model.eval()
        return self.model(x)

    def restore_best(self) -> None:
        """Load the weights of the best epoch (early stopping's result)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "best_state": self.best_state,
            "last_metrics": self.last_metrics,
        }

    def load_weights(self, state: Mapping[str, Any]) -> None:
        """Only the weights of a saved state (its last and its best epoch's): enough to score the model."""
        self.model.load_state_dict(state["model"])
        self.best_state = state["best_state"]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        for key in (
            "epoch",
            "bad_epochs",
            "stopped",
            "best_value",
            "best_epoch",
            "best_metrics",
            "best_state",
            "last_metrics",
        ):
            setattr(self, key, state[key])


def train(
    runs: Sequence[TrainingRun], until: int, on_epoch: Callable[[int, dict[str, float]], None] | None = None
) -> None:
    """Train runs in lockstep (k folds advance together) up to epoch `until` or until each stops early.

    After each epoch `on_epoch(epoch, metrics)` gets the metrics averaged over the runs (a run that
    stopped early contributes its last epoch), so k-fold curves can be reported and pruned per epoch.
    """
    while True:
        active = [run for run in runs if not run.stopped and run.epoch < until]
        if not active:
            return
        for run in active:
            run.train_epoch()
        if on_epoch is not None:
            on_epoch(max(run.epoch for run in runs), mean_metrics([run.last_metrics for run in runs]))


def mean_metrics(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Key-wise mean of metric dicts (the k-fold average)."""
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def save_checkpoint(path: Path, runs: Sequence[TrainingRun], params: Mapping[str, Any]) -> None:
    """Everything needed to continue the runs exactly: their states and torch's global RNG (dropout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"params": dict(params), "runs": [run.state_dict() for run in runs], "rng": torch.get_rng_state()}
    torch.save(state, path)


def read_checkpoint(path: Path, params: Mapping[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The checkpoint at `path` if it holds runs of the same configuration."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    return state if state["params"] == dict(params) else None


def load_checkpoint(path: Path, runs: Sequence[TrainingRun], params: Mapping[str, Any], until: int) -> bool:
    """Continue from `path` if it holds the same configuration at no more than `until` epochs."""
    state = read_checkpoint(path, params, runs[0].device)
    if state is None or len(state["runs"]) != len(runs) or max(s["epoch"] for s in state["runs"]) > until:
        return False
    for run, run_state in zip(runs, state["runs"], strict=True):
        run.load_state_dict(run_state)
    torch.set_rng_state(state["rng"].cpu())
    return True
