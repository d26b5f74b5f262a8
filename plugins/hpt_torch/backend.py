"""The `mlp` backend: tune a PyTorch multilayer perceptron on a tabular dataset.

    hpt run --backend mlp --dataset digits --strategy skopt
    hpt.optimize(MLPBackend(dataset="iris"), trials=20, seed=0)

The objective is a validation metric (the mean over folds with `folds=k`); the test split is scored
once, for the best configuration, by `final_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hpt.backend import Backend, Result, TrialContext
from hpt.space import Params, Space

from hpt_torch.datasets import CLASSIFICATION, load_dataset, make_folds
from hpt_torch.engine import DeviceData, Member, Stack
from hpt_torch.hyperparams import LEARNING_RATE_RANGE, MAX_EPOCHS, PATIENCE, default_space, resolve
from hpt_torch.lr_finder import LRFinding, lr_range_test
from hpt_torch.metrics import resolve_objectives
from hpt_torch.training import CHECKPOINT_FILE, cpu_settings, resolve_device
from hpt_torch.trials import TrialRun, mean_metrics, read_checkpoint, train_trials

FINDER_SPAN = 10.0
"""With `lr_from_finder`, the learning-rate range becomes [suggestion / 10, suggestion * 10]."""
FINDER_BOUNDS = (1e-6, 1.0)
EXAMPLE_ROWS = 5


class MLPBackend(Backend):
    """A multilayer perceptron for classification or regression on a bundled, synthetic or CSV dataset.

    Options (the CLI's `--dataset`, `--data`, ... flags, or `-B name=value`):
        dataset: a bundled or synthetic dataset: digits, breast_cancer, wine, iris, diabetes, classification,
            friedman.
        data: a CSV file to tune on instead of `dataset` (with `target`).
        target: the column of `data` to predict.
        metric: the objective: valid_loss (default), valid_accuracy, valid_f1, valid_rmse, valid_mae, valid_r2
            (the valid_ prefix may be left out); a comma-separated list makes several objectives for a
            multi-objective strategy (valid_loss,n_params with nsga2), the first watched by early stopping
            and pruning.
        device: auto, cpu, cuda, cuda:N or mps.
        size: rows of a synthetic set (or a subsample of a bundled one).
        folds: k-fold cross-validation on the non-test rows instead of one validation split.
        lr_from_finder: run the LR range test first and centre the learning-rate range on its suggestion.
        max_epochs: the fixed number of epochs in the default space (the most a trial trains).
        patience: epochs without improvement before early stopping, in the default space.
        task: classification or regression, to force how a CSV target is read.
        split_seed: the seed of the train/valid/test split (the same for every trial).
        threads: the most CPU threads one trial's training uses.

    Every trial trains with `hpt_torch.engine`: alone as a stack of one (of k members with `folds=k`). With
    `hpt run --batch-trials K`, the K configurations of a batch train as one stack on a GPU (`evaluate_batch`,
    population training), whatever their hyperparameters; on a CPU one after another.
    """

    name = "mlp"

    def __init__(
        self,
        dataset: str = "digits",
        data: str | Path | None = None,
        target: str | None = None,
        metric: str | Sequence[str] | None = None,
        device: str = "auto",
        size: int | None = None,
        folds: int | None = None,
        lr_from_finder: bool = False,
        max_epochs: int = MAX_EPOCHS,
        patience: int = PATIENCE,
        task: str | None = None,
        split_seed: int = 0,
        threads: int = 1,
    ) -> None:
        resolve_device(device)  # an unavailable device fails now, not in every trial
        data = str(Path(data).resolve()) if data is not None else None
        ds = load_dataset(dataset, data, target, size, task, split_seed)
        self.folds, self.x_test, self.y_test = make_folds(ds, folds, split_seed)
        self.dataset, self.task, self.n_classes = ds.name, ds.task, ds.n_classes
        self.classes = ds.classes
        self.example = {str(k): v for k, v in ds.features.head(EXAMPLE_ROWS).to_dict(orient="list").items()}
        """A few raw rows (column -> values): the logged model's input example."""
        self.objectives = resolve_objectives(metric, ds.task)
        self.metric, self.direction = self.objectives[0]
        self.device = device
        self.max_epochs, self.patience, self.threads = int(max_epochs), int(patience), int(threads)
        self._data: Any = None
        self.learning_rate_range = LEARNING_RATE_RANGE
        self._options = {
            "dataset": dataset,
            "data": data,
            "target": target,
            "metric": metric,
            "device": device,
            "size": size,
            "folds": folds,
            "lr_from_finder": lr_from_finder,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "task": task,
            "split_seed": split_seed,
        }
        if lr_from_finder:
            self.learning_rate_range = narrowed_range(self.find_learning_rate().suggestion)

    # What the study asks about
    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(direction for _, direction in self.objectives)

    def default_space(self) -> Space:
        return default_space(self.max_epochs, self.patience, self.learning_rate_range)

    def describe(self) -> str:
        return f"mlp-{self.dataset}"

    def tags(self) -> dict[str, str]:
        return {"hpt.dataset": self.dataset, "hpt.task": self.task}

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def auto_batch_trials(self) -> int:
        from hpt_torch.engine import auto_batch_trials

        return auto_batch_trials(self.device)

    # Training
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}  # the device copy of the folds is rebuilt where it is needed

    def data(self, folds: int | None = None) -> DeviceData:
        """The folds on the device (built once per process), or only the first `folds`."""
        if self._data is None:
            self._data = DeviceData.from_folds(self.folds, self.task, self.n_classes, resolve_device(self.device))
        if folds is not None and folds < len(self.folds):
            return DeviceData.from_folds(self.folds[:folds], self.task, self.n_classes, resolve_device(self.device))
        return self._data

    def _trial(self, params: Params, budget: float | None, ctx: TrialContext, folds: int | None = None) -> TrialRun:
        """A trial's members: one per fold, fold i with seed + i."""
        seed = 0 if ctx.seed is None else int(ctx.seed)
        until = epochs_until(params, budget)
        members = [Member(params, fold, seed + fold, until) for fold in range(folds or len(self.folds))]
        return TrialRun(params, ctx, members, checkpoint_file(ctx), resumes=budget is not None)

    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> Result:
        """Train (one network, or one per fold as a stack), report every epoch, stop early, return the best
        epoch's validation metric (the mean over folds). With a budget (epochs), continue from the trial's
        checkpoint."""
        (outcome,) = self.evaluate_population([resolve(params)], [budget], [ctx])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def evaluate_batch(
        self, params: Sequence[Params], budgets: Sequence[float | None], ctxs: Sequence[TrialContext]
    ) -> list[Any]:
        """Population training: on a GPU, the batch's members train as one stack (several when their batch sizes
        share no micro-batch), whatever their hyperparameters; on a CPU, where stacking gains little, one after
        another. Each keeps its own seed, data order, early stopping, reports and checkpoint. One entry per
        member: its Result or its exception."""
        out: list[Any] = [None] * len(params)
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, member_params in enumerate(params):
            try:
                valid.append((index, resolve(member_params)))
            except Exception as exc:  # a bad configuration fails alone
                out[index] = exc
        if resolve_device(self.device).type == "cpu":
            groups = [[member] for member in valid]
        else:
            sizes = [min(p["batch_size"], max(len(f.y_train) for f in self.folds)) for _, p in valid]
            groups = [[valid[i] for i in group] for group in micro_batch_groups(sizes)]
        for group in groups:
            indices = [index for index, _ in group]
            try:
                results = self.evaluate_population(
                    [p for _, p in group], [budgets[i] for i in indices], [ctxs[i] for i in indices]
                )
            except Exception as exc:  # a stack that cannot train (e.g. out of memory) fails its members only
                results = [exc] * len(indices)
            for index, result in zip(indices, results, strict=True):
                out[index] = result
        return out

    def evaluate_population(
        self, params: Sequence[Params], budgets: Sequence[float | None], ctxs: Sequence[TrialContext]
    ) -> list[Any]:
        """Train resolved configurations (and their folds) as one stack; one entry per configuration: its
        Result or the exception that ended it."""
        seeds = [0 if ctx.seed is None else int(ctx.seed) for ctx in ctxs]
        with cpu_settings(self.threads):
            trials = [self._trial(p, b, ctx) for p, b, ctx in zip(params, budgets, ctxs, strict=True)]
            stack = train_trials(trials, self.data(), self.metric, self.direction, dropout_seed=seeds[0])
        return [self._result(t, stack) if t.outcome is None else t.outcome for t in trials]

    def _result(self, trial: TrialRun, stack: Stack) -> Result:
        """The objective (best epoch's validation metric, averaged over folds) and the final metrics."""
        states = [m.state for m in trial.members]
        best = mean_metrics([s.best_metrics for s in states])
        extra = {
            "best_epoch": float(np.mean([s.best_epoch for s in states])),
            "epochs": max(s.epoch for s in states),
            "n_params": stack.n_params(stack.members.index(trial.members[0])),
        }
        metrics = {**{f"best_{k}": v for k, v in best.items()}, **extra}
        values = [best[name] if name in best else extra[name] for name, _ in self.objectives]
        return Result(values[0] if len(values) == 1 else values, metrics=metrics)

    def _best_weights(self, params: Params, seed: int, checkpoint_dir: Path | None) -> list[Any] | None:
        """The first fold's best weights from the trial's checkpoint, if it holds this configuration."""
        checkpoint = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir is not None else None
        saved = read_checkpoint(checkpoint, params)
        if saved is None:
            return None
        first = saved["members"][0]
        return first["best"] or first["weights"]

    def final_report(self, params: Params, seed: int | None, checkpoint_dir: Path | None = None) -> dict[str, float]:
        """Score the test split with the weights the trial selected (its best epoch, restored from its
        checkpoint); without a checkpoint, train the configuration again as its trial did (same seed)."""
        params = resolve(params)
        seed = 0 if seed is None else int(seed)
        weights = self._best_weights(params, seed, checkpoint_dir)
        with cpu_settings(self.threads):
            data = self.data(1)
            if weights is not None:
                stack = Stack([Member(params, 0, seed, 0)], data, self.metric, self.direction, seed)
                stack.load_weights(0, weights)
            else:  # as the trial trained (its first fold, dropout masks from the same generator)
                trial = TrialRun(params, TrialContext(0), [Member(params, 0, seed, params["max_epochs"])])
                stack = train_trials([trial], data, self.metric, self.direction, dropout_seed=seed)
            (metrics,) = stack.score(self.x_test, self.y_test)
        return {f"test_{k}": v for k, v in metrics.items()}

    def save_model(self, params: Params, checkpoint_dir: Path | None, path: Path) -> bool:
        """The trial's network at its best epoch (from its checkpoint: the weights `final_report` scored) with
        the first fold's preprocessing, as an MLflow pyfunc model (`hpt_torch.serving`)."""
        params = resolve(params)
        weights = self._best_weights(params, 0, checkpoint_dir)
        if weights is None:
            return False
        from hpt_torch.network import build_mlp
        from hpt_torch.serving import MLPModel, save_mlp_model

        fold = self.folds[0]
        with cpu_settings(self.threads):
            network = build_mlp(params, weights).eval()
            classes = list(self.classes) if self.task == CLASSIFICATION else None
            model = MLPModel(network, fold.encoder, fold.x_mean, fold.x_scale, classes, fold.y_mean, fold.y_std)
            save_mlp_model(path, model, self.example)
        return True

    def find_learning_rate(self, params: Params | None = None, seed: int = 0, **options: Any) -> LRFinding:
        """The LR range test on the first fold's training rows, for `params` (default: the defaults)."""
        params = resolve(params or {})
        with cpu_settings(self.threads):
            return lr_range_test(params, self.data(1), seed=seed, **options)


def epochs_until(params: Params, budget: float | None) -> int:
    """The epoch a trial trains to: its budget (epochs) if it has one, else `max_epochs`."""
    return params["max_epochs"] if budget is None else max(1, int(round(budget)))


def micro_batch_groups(sizes: Sequence[int]) -> list[list[int]]:
    """Members (indices) grouped so that each group's batch sizes are multiples of its smallest (their common
    micro-batch: a group of 32, 64, 128 and 256 steps at 32 rows; 48 would start another)."""
    groups: list[tuple[int, list[int]]] = []
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        group = next((g for micro, g in groups if sizes[index] % micro == 0), None)
        if group is None:
            groups.append((sizes[index], [index]))
        else:
            group.append(index)
    return [g for _, g in groups]


def checkpoint_file(ctx: TrialContext) -> Path | None:
    return ctx.checkpoint_dir / CHECKPOINT_FILE if ctx.checkpoint_dir is not None else None


def narrowed_range(suggestion: float) -> tuple[float, float]:
    """The learning-rate range centred (in log scale) on the finder's suggestion, two decades wide."""
    low = min(max(suggestion / FINDER_SPAN, FINDER_BOUNDS[0]), FINDER_BOUNDS[1] / FINDER_SPAN**2)
    return low, low * FINDER_SPAN**2
