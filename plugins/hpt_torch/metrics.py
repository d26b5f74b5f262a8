"""Validation and test metrics of K members computed on the device in one pass, left there for the engine to
read once per epoch with everything else.

They are evaluated every epoch, so they are plain tensor formulas (checked against scikit-learn's
in the tests) rather than calls that copy predictions to the host and re-validate them each time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from hpt.errors import HptError

from hpt_torch.datasets import CLASSIFICATION

CLASSIFICATION_METRICS = ("loss", "accuracy", "f1")
REGRESSION_METRICS = ("loss", "rmse", "mae", "r2")
MAXIMIZED = frozenset({"accuracy", "f1", "r2"})


def metric_names(task: str) -> tuple[str, ...]:
    """What `member_metrics` returns for `task` (without the `valid_` / `test_` prefix)."""
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


def predict_classes(out: torch.Tensor) -> torch.Tensor:
    """Class indices from logits (`[..., n_out]`; one logit: positive class when above 0)."""
    return (out.squeeze(-1) > 0).long() if out.shape[-1] == 1 else out.argmax(-1)


def member_metrics(
    task: str,
    out: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    y_mean: float | torch.Tensor = 0.0,
    y_std: float | torch.Tensor = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """`metric_names(task)` of K members at once, as a `[K, M]` tensor left on the device: loss plus accuracy and
    macro F1 (classification) or RMSE, MAE and R^2 in the target's units (regression).

    `out` is `[K, N, n_out]`; `y` the targets, `[N]` shared by all or `[K, N]`; `weight` (`[K, N]`, 1 or 0) marks
    each member's real rows where members see validation sets of different sizes (k folds); `y_mean`, `y_std`
    (numbers or `[K, 1]`) map standardised regression targets back to their units. Macro F1 counts, as
    scikit-learn does, only the classes present in the truth or the predictions."""
    k, n, n_out = out.shape
    y = y.expand(k, n)
    rows = torch.full((k,), float(n), device=out.device) if weight is None else weight.sum(1).clamp_min(1)

    def mean(values: torch.Tensor) -> torch.Tensor:
        return (values if weight is None else values * weight).sum(1) / rows

    if task != CLASSIFICATION:
        error = out.squeeze(2) - y
        pred, truth = out.squeeze(2) * y_std + y_mean, y * y_std + y_mean
        err = pred - truth
        centred = truth - mean(truth).unsqueeze(1)
        ss_tot = (mean(centred * centred) * rows).clamp_min(1e-12)
        mse = mean(err * err)
        return torch.stack([mean(error * error), mse.sqrt(), mean(err.abs()), 1 - mse * rows / ss_tot], 1)
    if n_out == 1:
        losses = F.binary_cross_entropy_with_logits(out.squeeze(2), y.float(), reduction="none")
    else:  # cross-entropy as logsumexp minus the target's logit (on a CPU, log_softmax costs several times more)
        losses = out.logsumexp(2) - out.gather(2, y.unsqueeze(2)).squeeze(2)
    pred = predict_classes(out)
    cells = n_classes * n_classes
    index = torch.arange(k, device=out.device).unsqueeze(1) * cells + y * n_classes + pred
    counts = torch.ones(k * n, device=out.device) if weight is None else weight.reshape(-1)
    # index_add_ rather than bincount: on CUDA bincount reads the largest index back to size its output
    confusion = torch.zeros(k * cells, device=out.device).index_add_(0, index.reshape(-1), counts)
    confusion = confusion.view(k, n_classes, n_classes)
    true_pos = confusion.diagonal(dim1=1, dim2=2).float()
    support = (confusion.sum(2) + confusion.sum(1)).float()
    present = support > 0
    f1 = torch.where(present, 2 * true_pos / support.clamp_min(1), 0).sum(1) / present.sum(1).clamp_min(1)
    return torch.stack([mean(losses), mean((pred == y).float()), f1], 1)
