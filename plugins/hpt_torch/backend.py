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
from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.errors import HptError
from hpt.space import Params, Space

from hpt_torch.datasets import CLASSIFICATION, load_dataset, make_folds
from hpt_torch.hyperparams import LEARNING_RATE_RANGE, MAX_EPOCHS, PATIENCE, default_space, resolve
from hpt_torch.lr_finder import LRFinding, lr_range_test
from hpt_torch.metrics import resolve_objectives
from hpt_torch.population import Member, stack_groups, train_population
from hpt_torch.training import (
    CHECKPOINT_FILE,
    TrainingRun,
    cpu_settings,
    load_checkpoint,
    mean_metrics,
    read_checkpoint,
    resolve_device,
    save_checkpoint,
    seeded,
    train,
)

FINDER_SPAN = 10.0
"""With `lr_from_finder`, the learning-rate range becomes [suggestion / 10, suggestion * 10]."""
FINDER_BOUNDS = (1e-6, 1.0)
EXAMPLE_ROWS = 5
TRAINERS = ("stacked", "autograd")


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
        trainer: stacked (population training's hand-written step on a stack of one; 2x to 3x faster than
            autograd on small networks) or autograd (an nn.Module with torch.optim; always so with folds).

    With `hpt run --batch-trials K`, the K configurations of a batch train as stacked models
    (`evaluate_batch`, population training), whatever their hyperparameters.
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
        trainer: str = "stacked",
    ) -> None:
        if trainer not in TRAINERS:
            raise HptError(f"unknown trainer {trainer!r}; use {' or '.join(TRAINERS)}")
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
        self.trainer = trainer
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
            "trainer": trainer,
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
        from hpt_torch.population import auto_batch_trials

        return auto_batch_trials(self.device)

    # Training
    def _runs(self, params: Params, seed: int, folds: list | None = None) -> list[TrainingRun]:
        device = resolve_device(self.device)
        return [
            TrainingRun(
                params,
                fold,
                task=self.task,
                n_classes=self.n_classes,
                device=device,
                seed=seed + i,
                monitor=self.metric,
                direction=self.direction,
            )
            for i, fold in enumerate(folds or self.folds)
        ]

    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> Result:
        """Train (one model, or one per fold in lockstep), report every epoch, stop early, return the
        best epoch's validation metric. With a budget (epochs), continue from the trial's checkpoint. The
        `stacked` trainer (one fold) trains the trial as a population of one; the rest is the autograd loop."""
        params = resolve(params)
        if self.trainer == "stacked" and len(self.folds) == 1:
            (outcome,) = self.evaluate_population([params], [budget], [ctx])
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        until = epochs_until(params, budget)
        seed = 0 if ctx.seed is None else int(ctx.seed)
        checkpoint = checkpoint_file(ctx)
        with seeded(seed, resolve_device(self.device)), cpu_settings(self.threads):
            runs = self._runs(params, seed)
            if budget is not None and checkpoint is not None:
                load_checkpoint(checkpoint, runs, params, until)

            def report(epoch: int, metrics: dict[str, float]) -> None:
                ctx.report(epoch, metrics)
                if ctx.should_stop():
                    if checkpoint is not None:
                        save_checkpoint(checkpoint, runs, params)
                    raise TrialPruned()

            train(runs, until, report)
            if checkpoint is not None:
                save_checkpoint(checkpoint, runs, params)
        return self._result(runs)

    def evaluate_batch(
        self, params: Sequence[Params], budgets: Sequence[float | None], ctxs: Sequence[TrialContext]
    ) -> list[Any]:
        """Population training: members train as stacked models (`population.stack_groups` decides which
        share a stack; they may differ in every hyperparameter), each with its own seed, data order, early
        stopping, reports and checkpoint. A member the grouping leaves alone is a stack of one (the stacked
        step is cheaper than autograd's even for one network); on k folds every member trains by itself as
        in `evaluate`. One entry per member: its Result or its exception."""
        out: list[Any] = [None] * len(params)
        valid: list[tuple[int, dict[str, Any]]] = []
        for index, member_params in enumerate(params):
            try:
                valid.append((index, resolve(member_params)))
            except Exception as exc:  # a bad configuration fails alone
                out[index] = exc
        if len(self.folds) == 1:
            fold = self.folds[0]
            n_outputs = self.n_classes if self.n_classes > 2 else 1
            device_type = resolve_device(self.device).type
            cuts = stack_groups([p for _, p in valid], len(fold.y_train), fold.x_train.shape[1], n_outputs, device_type)
            groups = [[valid[i] for i in cut] for cut in cuts]
        else:
            groups = [[member] for member in valid]
        for group in groups:
            if len(self.folds) > 1:  # k folds train in lockstep in `evaluate`, one member at a time
                ((index, _),) = group
                out[index] = self._evaluate_alone(params[index], budgets[index], ctxs[index])
                continue
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

    def _evaluate_alone(self, params: Params, budget: float | None, ctx: TrialContext) -> Any:
        try:
            return self.evaluate(params, budget, ctx)
        except Exception as exc:  # one member failing must not fail the others
            return exc

    def evaluate_population(
        self, params: Sequence[Params], budgets: Sequence[float | None], ctxs: Sequence[TrialContext]
    ) -> list[Any]:
        """Train resolved configurations as one stack, whatever `stack_groups` would decide; one entry per
        member: its Result or the exception that ended it."""
        device = resolve_device(self.device)
        seeds = [0 if ctx.seed is None else int(ctx.seed) for ctx in ctxs]
        members: list[Member] = []
        with seeded(seeds[0], device), cpu_settings(self.threads):
            for member_params, budget, ctx, seed in zip(params, budgets, ctxs, seeds, strict=True):
                with seeded(seed, device):  # the same initial weights as the member trained alone
                    (run,) = self._runs(member_params, seed)
                member = Member(run, ctx, epochs_until(member_params, budget), checkpoint_file(ctx))
                if budget is not None and member.checkpoint is not None:
                    load_checkpoint(member.checkpoint, [run], member_params, member.until)
                members.append(member)
            train_population(members, dropout_seed=seeds[0])
        return [self._result([m.run]) if m.outcome is None else m.outcome for m in members]

    def _result(self, runs: list[TrainingRun]) -> Result:
        """The objective (best epoch's validation metric, averaged over folds) and the final metrics."""
        best = mean_metrics([run.best_metrics for run in runs])
        extra = {
            "best_epoch": float(np.mean([run.best_epoch for run in runs])),
            "epochs": max(run.epoch for run in runs),
            "n_params": runs[0].n_params,
        }
        metrics = {**{f"best_{k}": v for k, v in best.items()}, **extra}
        values = [best[name] if name in best else extra[name] for name, _ in self.objectives]
        return Result(values[0] if len(values) == 1 else values, metrics=metrics)

    def final_report(self, params: Params, seed: int | None, checkpoint_dir: Path | None = None) -> dict[str, float]:
        """Score the test split with the weights the trial selected (its best epoch, restored from its
        checkpoint); without a checkpoint, train the configuration again as its trial did (same seed)."""
        params = resolve(params)
        seed = 0 if seed is None else int(seed)
        checkpoint = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir is not None else None
        with seeded(seed, resolve_device(self.device)), cpu_settings(self.threads):
            (run,) = self._runs(params, seed, self.folds[:1])
            saved = read_checkpoint(checkpoint, params, run.device) if checkpoint is not None else None
            if saved is not None:
                run.load_weights(saved["runs"][0])
            elif self.trainer == "stacked":  # as the trial trained (dropout masks from the same generator)
                train_population([Member(run, TrialContext(0), params["max_epochs"], None)], dropout_seed=seed)
            else:
                train([run], params["max_epochs"])
            run.restore_best()
            metrics = run.evaluate(*run.tensors(self.x_test, self.y_test))
        return {f"test_{k}": v for k, v in metrics.items()}

    def save_model(self, params: Params, checkpoint_dir: Path | None, path: Path) -> bool:
        """The trial's network at its best epoch (from its checkpoint: the weights `final_report` scored) with
        the first fold's preprocessing, as an MLflow pyfunc model (`hpt_torch.serving`)."""
        checkpoint = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir is not None else None
        if checkpoint is None or not checkpoint.is_file():
            return False
        from hpt_torch.serving import MLPModel, save_mlp_model

        params = resolve(params)
        fold = self.folds[0]
        with cpu_settings(self.threads):
            (run,) = self._runs(params, 0, self.folds[:1])
            saved = read_checkpoint(checkpoint, params, run.device)
            if saved is None:
                return False
            run.load_weights(saved["runs"][0])
            run.restore_best()
            network = run.model.cpu().eval()
            classes = list(self.classes) if self.task == CLASSIFICATION else None
            model = MLPModel(network, fold.encoder, fold.x_mean, fold.x_scale, classes, fold.y_mean, fold.y_std)
            save_mlp_model(path, model, self.example)
        return True

    def find_learning_rate(self, params: Params | None = None, seed: int = 0, **options: Any) -> LRFinding:
        """The LR range test on the first fold's training rows, for `params` (default: the defaults)."""
        params = resolve(params or {})
        with cpu_settings(self.threads):
            return lr_range_test(
                params,
                self.folds[0],
                task=self.task,
                n_classes=self.n_classes,
                device=resolve_device(self.device),
                seed=seed,
                **options,
            )


def epochs_until(params: Params, budget: float | None) -> int:
    """The epoch a trial trains to: its budget (epochs) if it has one, else `max_epochs`."""
    return params["max_epochs"] if budget is None else max(1, int(round(budget)))


def checkpoint_file(ctx: TrialContext) -> Path | None:
    return ctx.checkpoint_dir / CHECKPOINT_FILE if ctx.checkpoint_dir is not None else None


def narrowed_range(suggestion: float) -> tuple[float, float]:
    """The learning-rate range centred (in log scale) on the finder's suggestion, two decades wide."""
    low = min(max(suggestion / FINDER_SPAN, FINDER_BOUNDS[0]), FINDER_BOUNDS[1] / FINDER_SPAN**2)
    return low, low * FINDER_SPAN**2
