"""Hyperparameter importance: which parameters explain the variation of a study's objective.

    hpt importance RUN_ID                  # a table; logs plots/importance.png and plots/importance.json
    hpt.importance(study)                  # {"learning_rate": 0.71, "n_neurons": 0.18, ...}

The method is the first-order part of a functional ANOVA (fANOVA, Hutter et al. 2014) estimated on a
random forest fitted to the complete trials: for each parameter, the variance of the forest's marginal
prediction over that parameter's values (the partial dependence, computed exactly on the trees),
relative to the sum over all parameters. A parameter with no effect has a flat marginal: it ranks last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
from hpt.cli_options import guard
from hpt.errors import HptError

if TYPE_CHECKING:
    from hpt.config import StudyConfig
    from hpt.space import Space
    from hpt.trial import Trial
    from matplotlib.figure import Figure

MIN_TRIALS = 10
"""Complete trials a ranking needs (fewer cannot separate effects from noise)."""
STUDY_MIN_TRIALS = 20
"""`hpt run` logs the ranking at the end of a study of at least this many trials."""
METHOD = "fanova-random-forest"
INACTIVE = -1.0
"""The encoding of a conditional parameter that a trial did not use (outside the unit interval)."""
GRID_POINTS = 25
TREES = 64
IMPORTANCE_FILE = "importance.json"
IMPORTANCE_PLOT = "importance.png"


def importance_of(
    space: Space, trials: Sequence[Trial], direction: str = "minimize", seed: int = 0
) -> dict[str, float]:
    """Each varying parameter's share of the explained variation of the first objective, largest first
    (the shares sum to 1). One clear line when fewer than MIN_TRIALS trials are complete."""
    from hpt.space import Fixed
    from hpt.trial import TrialState
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import partial_dependence

    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None and t.params]
    if len(done) < MIN_TRIALS:
        raise HptError(
            f"importance needs at least {MIN_TRIALS} complete trials; this study has {len(done)}: run more trials "
            f"(hpt run --resume RUN_ID --trials N)"
        )
    names = [name for name, param in space.items() if not isinstance(param, Fixed)]
    x = np.array([[_encode(space, name, t.params) for name in names] for t in done])
    varying = [i for i in range(len(names)) if np.ptp(x[:, i]) > 0]
    y = np.array([t.value for t in done], dtype=float)
    if not varying or np.ptp(y) == 0:  # nothing varies, or nothing changes: every parameter explains nothing
        return dict.fromkeys(names, 0.0)
    forest = RandomForestRegressor(TREES, min_samples_leaf=2, random_state=seed).fit(x[:, varying], y)
    effects: dict[str, float] = dict.fromkeys(names, 0.0)
    for column, index in enumerate(varying):
        marginal = partial_dependence(forest, x[:, varying], [column], method="recursion", grid_resolution=GRID_POINTS)
        effects[names[index]] = float(np.var(marginal["average"][0]))
    total = sum(effects.values())
    shares = {name: (value / total if total > 0 else 0.0) for name, value in effects.items()}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


def _encode(space: Space, name: str, params: Mapping[str, Any]) -> float:
    return space[name].encode(params[name]) if name in params else INACTIVE


def importance_figure(ranking: Mapping[str, float], title: str) -> Figure:
    """A horizontal bar chart of the ranking, most important on top."""
    from hpt_reports.plots import new_figure

    names = list(ranking)[::-1]
    fig = new_figure(7, 0.35 * len(names) + 1.2)
    ax = fig.add_subplot()
    ax.barh(names, [ranking[n] for n in names], color="tab:blue")
    ax.set_xlabel("share of the objective's explained variation (fANOVA, first order)")
    ax.set_xlim(0, max(1e-9, max(ranking.values())) * 1.1)
    ax.set_title(title)
    return fig


def write_importance(ranking: Mapping[str, float], directory: Path, title: str, n_trials: int, metric: str) -> None:
    """`importance.json` and `importance.png` in `directory` (no plot when matplotlib is missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    report = {"method": METHOD, "metric": metric, "complete_trials": n_trials, "importance": dict(ranking)}
    (directory / IMPORTANCE_FILE).write_text(json.dumps(report, indent=2))
    try:
        fig = importance_figure(ranking, title)
    except HptError:  # matplotlib is not installed
        return
    fig.savefig(directory / IMPORTANCE_PLOT)


def write_study_importance(study: Any, directory: Path) -> bool:
    """At the end of a study of STUDY_MIN_TRIALS trials or more (with MIN_TRIALS complete), its ranking
    into `directory` (what `hpt run` logs on the parent run). Returns whether it wrote one."""
    if len(study.trials) < STUDY_MIN_TRIALS or _complete(study.trials) < MIN_TRIALS:
        return False
    ranking = importance_of(study.space, study.trials, study.directions[0], study.seed or 0)
    metric = getattr(study.backend, "metric", None) or "objective"
    write_importance(ranking, directory, study.name, _complete(study.trials), metric)
    return True


def study_importance(study: Any, tracking_uri: str | None = None) -> dict[str, float]:
    """`hpt.importance`: the ranking of a Study object, or of the study logged under a parent run id
    (the forest seeded with the study's seed, so it matches what the study logged)."""
    if isinstance(study, str):
        from hpt.tracking import load_study

        record = load_study(study, tracking_uri)
        return importance_of(record.space, record.trials, *_objective_and_seed(record.config))
    return importance_of(study.space, study.trials, study.directions[0], study.seed or 0)


def _objective_and_seed(config: StudyConfig) -> tuple[str, int]:
    """The first objective's direction and the seed of the forest, from a logged study's configuration."""
    return (config.directions or ["minimize"])[0], config.seed or 0


def _complete(trials: Sequence[Trial]) -> int:
    from hpt.trial import TrialState

    return sum(t.state is TrialState.COMPLETE and t.value is not None for t in trials)


@click.command()
@click.argument("run_id", required=False)
@click.option("--experiment", default="hpt", show_default=True, help="Experiment of the newest study (no RUN_ID).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@click.option("--no-log", is_flag=True, help="Print only; log nothing on the study's parent run.")
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
@guard
def importance(run_id: str | None, experiment: str, tracking_uri: str | None, no_log: bool, as_json: bool) -> None:
    """Rank the parameters of the study logged under RUN_ID (default: the newest study) by how much of
    the objective's variation they explain, and log plots/importance.png and plots/importance.json on its run.

    \b
    hpt importance 3f2a...
    hpt importance --json --no-log
    """
    import tempfile

    from hpt.store import newest_study_run_id
    from hpt.tracking import load_study, make_client

    run_id = run_id or newest_study_run_id(tracking_uri, experiment)
    record = load_study(run_id, tracking_uri)
    ranking = importance_of(record.space, record.trials, *_objective_and_seed(record.config))
    client = make_client(tracking_uri)
    parent = client.get_run(run_id)
    if not no_log:
        with tempfile.TemporaryDirectory() as tmp:
            metric = parent.data.tags.get("hpt.metric", "objective")
            write_importance(ranking, Path(tmp), parent.info.run_name, _complete(record.trials), metric)
            client.log_artifacts(run_id, tmp, "plots")  # where a study logs its own
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "method": METHOD, "importance": ranking}))
        return
    click.echo(f"importance of the parameters of {parent.info.run_name} ({_complete(record.trials)} complete trials)")
    width = max(len(name) for name in ranking)
    for name, share in ranking.items():
        click.echo(f"  {name:<{width}}  {share:6.1%}  {'#' * round(share * 40)}")


__all__ = [
    "MIN_TRIALS",
    "importance",
    "importance_of",
    "study_importance",
    "write_importance",
    "write_study_importance",
]
