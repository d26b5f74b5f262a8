"""Validation and test metrics computed on the device, in one pass, with one host transfer.

They are evaluated every epoch, so they are plain tensor formulas (checked against scikit-learn's
in the tests) rather than calls that copy predictions to the host and re-validate them each time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from hpt.errors import HptError

from hpt_torch.datasets import CLASSIFICATION

CLASSIFICATION_METRICS = ("loss", "accuracy", "f1")
REGRESSION_METRICS = ("loss", "rmse", "mae", "r2")
MAXIMIZED = frozenset({"accuracy", "f1", "r2"})


def metric_names(task: str) -> tuple[str, ...]:
    """What `compute_metrics` returns for `task` (without the `valid_` / `test_` prefix)."""
    return CLASSIFICATION_METRICS if task == CLASSIFICATION else REGRESSION_METRICS


MODEL_OBJECTIVES = {"n_params": "minimize"}
"""Objectives measured on the model rather than the data, for multi-objective studies."""


def resolve_objectives(metric: str | Sequence[str] | None, task: str) -> list[tuple[str, str]]:
    """Names and directions of a comma-separated objective list, e.g. `valid_loss,n_params`. The first
    is a validation metric (what early stopping and pruning watch); the others may also be `n_params`."""
    listed = (metric or "valid_loss").split(",") if metric is None or isinstance(metric, str) else metric
    names = [str(name).strip() for name in listed]
    objectives = [resolve_metric(names[0], task)]
    for name in names[1:]:
        objectives.append((name, MODEL_OBJECTIVES[name]) if name in MODEL_OBJECTIVES else resolve_metric(name, task))
    if len({name for name, _ in objectives}) < len(objectives):
        raise HptError(f"metric {metric!r} names an objective twice; list each once")
    return objectives


def resolve_metric(metric: str | None, task: str) -> tuple[str, str]:
    """The objective's full name (`valid_accuracy`) and direction; `accuracy` is short for `valid_accuracy`."""
    if metric is None:
        return "valid_loss", "minimize"
    short = metric.removeprefix("valid_")
    names = metric_names(task)
    if short not in names:
        raise HptError(
            f"metric {metric!r} does not apply to {task}; choose one of {', '.join('valid_' + n for n in names)}"
        )
    return f"valid_{short}", "maximize" if short in MAXIMIZED else "minimize"


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.squeeze(1), y)


def _binary_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())


def loss_function(task: str, n_outputs: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy (softmax) for several classes, BCE on one logit for two, MSE for regression."""
    if task != CLASSIFICATION:
        return _mse
    return _binary_cross_entropy if n_outputs == 1 else F.cross_entropy


def predict_classes(out: torch.Tensor) -> torch.Tensor:
    """Class indices from logits (one logit: positive class when above 0)."""
    return (out.squeeze(1) > 0).long() if out.shape[1] == 1 else out.argmax(1)


def compute_metrics(
    task: str, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor, n_classes: int, y_mean: float, y_std: float
) -> dict[str, float]:
    """Loss plus accuracy and macro F1 (classification) or RMSE, MAE and R^2 in the target's units (regression)."""
    if task == CLASSIFICATION:
        pred = predict_classes(out)
        confusion = torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
        true_pos = confusion.diag().float()
        support = confusion.sum(1) + confusion.sum(0)
        present = support > 0  # like scikit-learn: classes absent from both truth and predictions do not count
        f1 = (2 * true_pos[present] / support[present]).mean()
        values = torch.stack([loss, (pred == y).float().mean(), f1])
    else:
        pred, truth = out.squeeze(1) * y_std + y_mean, y * y_std + y_mean
        err = pred - truth
        ss_tot = ((truth - truth.mean()) ** 2).sum().clamp_min(1e-12)
        values = torch.stack([loss, err.pow(2).mean().sqrt(), err.abs().mean(), 1 - err.pow(2).sum() / ss_tot])
    return dict(zip(metric_names(task), values.detach().float().cpu().tolist(), strict=True))
