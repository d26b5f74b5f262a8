"""Figures of one study: optimization history, parallel coordinates, slices, learning curves, Pareto front.

    from hpt.plots import save_study_plots
    save_study_plots(study, "plots/")        # history.png, parallel_coordinates.png, slices.png, ...

Each function returns a matplotlib `Figure` built without pyplot (no global state, no display
needed), titled with the study's name. matplotlib is imported on first use, so importing hpt stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hpt.errors import HptError
from hpt.space import Categorical, Float, Int
from hpt.trial import Trial, TrialState, beats

if TYPE_CHECKING:
    from hpt.study import Study
    from matplotlib.figure import Figure

TOP_CURVES = 5
"""Learning curves drawn: the best few trials, so the plot stays readable."""
_DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure not managed by pyplot (nothing global, nothing shown); one line if matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise HptError('plots need matplotlib: pip install "hpt[plots]"') from None
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _metric(study: Study) -> str:
    return getattr(study.backend, "metric", None) or "objective"


def _complete(study: Study) -> list[Trial]:
    return [t for t in study.trials if t.state is TrialState.COMPLETE and t.value is not None]


def _ranked(study: Study) -> list[Trial]:
    """Complete trials, best first (on the first objective)."""
    sign = 1.0 if study.directions[0] == "minimize" else -1.0
    return sorted(_complete(study), key=lambda t: sign * t.value)


def best_so_far(trials: Sequence[Trial], direction: str) -> list[float | None]:
    """The best value after each trial (in trial order), by the study's rule: a trial evaluated at a
    larger budget beats any at a smaller one, so a lucky one-epoch value does not stand."""
    out: list[float | None] = []
    best: Trial | None = None
    for trial in trials:
        if beats(trial, best, direction):
            best = trial
        out.append(best.value if best else None)
    return out


def history(study: Study) -> Figure:
    """Every trial's objective against its number (coloured by budget when budgets differ), and the best so far."""
    fig = new_figure(8, 4.5)
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_subplot()
    done = _complete(study)
    budgets = {t.budget for t in done}
    x, y = [t.number for t in done], [t.value for t in done]
    if len(budgets) > 1:
        points = ax.scatter(x, y, c=[t.budget or 0 for t in done], cmap="viridis", s=22, zorder=2)
        fig.colorbar(points, ax=ax, label="budget")
    else:
        ax.scatter(x, y, s=22, color="tab:blue", label="trial", zorder=2)
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED and t.value is not None]
    if pruned:
        ax.scatter([t.number for t in pruned], [t.value for t in pruned], s=14, color="0.6", label="pruned")
    best = best_so_far(study.trials, study.directions[0])
    steps = [(t.number, b) for t, b in zip(study.trials, best, strict=True) if b is not None]
    if steps:
        ax.step(*zip(*steps, strict=True), where="post", color="tab:red", linewidth=2, label="best so far")
    failed = sum(t.state is TrialState.FAILED for t in study.trials)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=_metric(study), title=f"Optimization history: {study.name}")
    if failed:
        ax.text(0.99, 0.98, f"{failed} failed", transform=ax.transAxes, ha="right", va="top", color="tab:red")
    _robust_ylim(ax, y, study.directions[0])
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return fig


def _robust_ylim(ax: Any, values: Sequence[float], direction: str) -> None:
    """Keep a few diverged trials from flattening the rest: clip the worst 5% out of view."""
    if len(values) < 10:
        return
    lo, hi = (
        (min(values), np.percentile(values, 95)) if direction == "minimize" else (np.percentile(values, 5), max(values))
    )
    pad = 0.05 * (hi - lo or 1.0)
    ax.set_ylim(lo - pad, hi + pad)


def _axis_ticks(param: Any) -> tuple[list[float], list[str]]:
    """Positions (in the unit cube) and labels for one parameter's axis."""
    if isinstance(param, Categorical):
        return [param.encode(c) for c in param.choices], [str(c) for c in param.choices]
    if isinstance(param, Float | Int):
        return [0.0, 1.0], [f"{param.low:.3g}", f"{param.high:.3g}"]
    return [], []


def parallel_coordinates(study: Study) -> Figure:
    """One line per complete trial through its parameters (unit-cube positions; log axes where the
    space is logarithmic) to the objective, coloured by objective; the best trial drawn thick on top."""
    names = list(study.space.tunable_names)
    ranked = _ranked(study)
    fig = new_figure(max(8, 1.1 * (len(names) + 1)), 5)
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax = fig.add_subplot()
    ax.set_title(f"Parallel coordinates: {study.name}")
    if not ranked:
        ax.text(0.5, 0.5, "no complete trial", ha="center", va="center", transform=ax.transAxes)
        return fig
    values = np.array([t.value for t in ranked])
    lo, hi = float(values.min()), float(values.max())
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    cmap = colormaps["viridis_r" if study.directions[0] == "minimize" else "viridis"]
    xs = np.arange(len(names) + 1)
    for i, trial in reversed(list(enumerate(ranked))):  # worst first, best on top
        ys = [
            study.space[n].encode(trial.params[n]) if study.space.is_active(n, trial.params) else np.nan for n in names
        ]
        ys.append(norm(trial.value))
        best = i == 0
        ax.plot(xs, ys, color=cmap(norm(trial.value)), alpha=1.0 if best else 0.55, linewidth=3 if best else 1.2)
    for x, name in enumerate(names):
        ax.axvline(x, color="0.3", linewidth=0.8)
        for pos, label in zip(*_axis_ticks(study.space[name]), strict=True):
            ax.text(x + 0.04, pos, label, fontsize=7, va="center", color="0.25")
    ax.axvline(len(names), color="0.3", linewidth=0.8)
    for pos, value in ((0.0, lo), (1.0, hi)):
        ax.text(len(names) + 0.04, pos, f"{value:.4g}", fontsize=7, va="center", color="0.25")
    ax.set_xticks(xs, [*names, _metric(study)], rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) + 0.2)
    ax.set_ylim(-0.05, 1.05)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=_metric(study))
    return fig


def slices(study: Study) -> Figure:
    """The objective against each parameter on its own, one panel per tunable parameter."""
    names = list(study.space.tunable_names)
    cols = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = new_figure(3.4 * cols, 2.8 * rows + 0.4)
    fig.suptitle(f"Slices: {study.name}")
    done = _complete(study)
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        param = study.space[name]
        shown = [t for t in done if name in t.params]
        y = [t.value for t in shown]
        if isinstance(param, Categorical):
            x = [param.choices.index(param.validate(t.params[name])) for t in shown]
            ax.set_xticks(range(len(param.choices)), [str(c) for c in param.choices], rotation=30, fontsize=7)
        else:
            x = [t.params[name] for t in shown]
            if getattr(param, "log", False):
                ax.set_xscale("log")
        ax.scatter(x, y, c=[t.number for t in shown], cmap="Blues", edgecolors="0.4", linewidths=0.3, s=18)
        ax.set_xlabel(name)
        if i % cols == 0:
            ax.set_ylabel(_metric(study))
        _robust_ylim(ax, y, study.directions[0])
        ax.grid(alpha=0.3)
    return fig


def _curve_metric(study: Study, trials: Sequence[Trial]) -> str | None:
    reported = {k for t in trials for _, metrics in t.intermediate for k in metrics}
    metric = _metric(study)
    if metric in reported:
        return metric
    return sorted(reported)[0] if reported else None


def learning_curves(study: Study, top: int = TOP_CURVES) -> Figure | None:
    """The per-step curves (`ctx.report`) of the `top` best trials; None when no trial reported any."""
    chosen = [t for t in _ranked(study) if t.intermediate][:top]
    metric = _curve_metric(study, chosen)
    if metric is None:
        return None
    fig = new_figure(8, 4.5)
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_subplot()
    for rank, trial in enumerate(chosen):
        steps = [(s, m[metric]) for s, m in trial.intermediate if metric in m]
        if steps:
            ax.plot(
                *zip(*steps, strict=True),
                marker="o",
                markersize=3,
                linewidth=2.5 if rank == 0 else 1.3,
                label=f"trial {trial.number} ({trial.value:.4g})",
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="step (epoch)", ylabel=metric, title=f"Learning curves of the top {len(chosen)} trials: {study.name}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def pareto(study: Study) -> Figure | None:
    """The first two objectives of every complete trial, the Pareto front joined; None for one objective."""
    if len(study.directions) < 2:
        return None
    done = [t for t in study.trials if t.state is TrialState.COMPLETE and t.values]
    front = sorted(study.pareto_front(), key=lambda t: t.values[0])
    fig = new_figure(6.5, 5)
    ax = fig.add_subplot()
    ax.scatter([t.values[0] for t in done], [t.values[1] for t in done], s=16, color="0.6", label="trial")
    ax.plot([t.values[0] for t in front], [t.values[1] for t in front], "o-", color="tab:red", label="Pareto front")
    ax.set(
        xlabel=f"objective 0 ({study.directions[0]})",
        ylabel=f"objective 1 ({study.directions[1]})",
        title=f"Pareto front: {study.name}",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def study_figures(study: Study) -> dict[str, Figure]:
    """Every figure that applies to this study, by file stem; empty when no trial completed."""
    if not _complete(study):
        return {}
    figures = {"history": history(study), "parallel_coordinates": parallel_coordinates(study), "slices": slices(study)}
    for stem, figure in (("learning_curves", learning_curves(study)), ("pareto_front", pareto(study))):
        if figure is not None:
            figures[stem] = figure
    return figures


PLOT_MIN_TRIALS = 5
"""Finished trials a study needs before `hpt run` draws its plots (fewer show nothing a table does not)."""


def save_study_plots(study: Study, directory: str | Path) -> list[Path]:
    """Write the study's figures as PNG files into `directory` (created if needed) and return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, figure in study_figures(study).items():
        path = directory / f"{stem}.png"
        figure.savefig(path)
        paths.append(path)
    return paths


__all__ = [
    "PLOT_MIN_TRIALS",
    "new_figure",
    "best_so_far",
    "history",
    "learning_curves",
    "parallel_coordinates",
    "pareto",
    "save_study_plots",
    "slices",
    "study_figures",
]
