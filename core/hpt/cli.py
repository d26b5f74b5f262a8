"""The `hpt` command line. Heavy libraries (MLflow, PyTorch, scikit-optimize) load only when a
command needs them, so `hpt --help` and `hpt plugins` start fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
import yaml

from hpt.errors import HptError
from hpt.observers import StudyObserver
from hpt.plugins import KINDS, registry

SCHEDULER_FLAGS = ("sampler", "min_budget", "max_budget", "eta")
BACKEND_FLAGS = ("function", "dim", "dataset", "data", "target", "metric", "device", "size", "folds", "lr_from_finder")


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HptError(f"{flag} {item!r}: expected NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def _typed(values: dict[str, str]) -> dict[str, Any]:
    """Option values as YAML scalars: `3` -> 3, `true` -> True, `ei` -> 'ei'."""
    return {k: yaml.safe_load(v) if v else v for k, v in values.items()}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


class ProgressBar(StudyObserver):
    """A rich progress bar on stderr with the best value so far."""

    def __init__(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("best {task.fields[best]}"),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task("trials", total=total, best="-")

    def study_started(self, study: Any) -> None:
        self.progress.start()

    def trial_finished(self, study: Any, trial: Any) -> None:
        self.progress.update(self.task, advance=1, best=_fmt(study.best_value))

    def study_finished(self, study: Any, status: str) -> None:
        self.progress.stop()


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line on stderr and a non-zero exit."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HptError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpt")
def cli() -> None:
    """hpt: hyperparameter tuning for neural networks, tracked in MLflow."""


@cli.command()
@click.option("--strategy", default="random", show_default=True, help="Search strategy (see `hpt plugins`).")
@click.option("--backend", default="mlp", show_default=True, help="What to tune: mlp, function, ...")
@click.option(
    "--function", help="Test function of the function backend (branin, hartmann6, rosenbrock, ackley, mixed, zdt1)."
)
@click.option("--dim", type=int, help="Dimension of rosenbrock / ackley.")
@click.option(
    "--dataset", help="Bundled dataset of the mlp backend (digits, breast_cancer, wine, iris, diabetes, ...)."
)
@click.option("--data", type=click.Path(), help="A CSV file to tune on (with --target).")
@click.option("--target", help="Target column of --data.")
@click.option("--metric", help="Objective metric (overrides the backend's default).")
@click.option("--device", help="auto, cpu or cuda (mlp backend).")
@click.option("--size", type=int, help="Rows of a synthetic dataset.")
@click.option("--folds", type=int, help="k-fold cross-validation instead of one validation split.")
@click.option(
    "--lr-from-finder", is_flag=True, default=None, help="Narrow the learning-rate range with an LR range test first."
)
@click.option(
    "-B", "--backend-option", "backend_opts", multiple=True, metavar="KEY=VALUE", help="Other backend option."
)
@click.option("-O", "--option", "strategy_opts", multiple=True, metavar="KEY=VALUE", help="Strategy option.")
@click.option("--sampler", help="Strategy that proposes configurations to successive-halving / hyperband / asha.")
@click.option("--min-budget", type=float, help="Smallest budget (epochs) of successive-halving / hyperband / asha.")
@click.option("--max-budget", type=float, help="Largest budget (epochs) of successive-halving / hyperband / asha.")
@click.option("--eta", type=float, help="Promotion ratio of successive-halving / hyperband / asha (default 3).")
@click.option("--prune", type=click.Choice(["none", "median"]), help="Stop trials whose curve is below the median.")
@click.option("--prune-warmup", type=int, help="Steps (epochs) before --prune judges a trial (default 2).")
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True, help="Number of trials.")
@click.option("--timeout", type=float, help="Stop starting trials after this many seconds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (strategy and trials).")
@click.option("--space", "space_file", type=click.Path(), help="Search space file (YAML or TOML).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="Pin a parameter, or narrow it: lr=1e-4..1e-2, act=relu,tanh.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), help="Trials run in parallel (default 1; a dask cluster's size)."
)
@click.option("--executor", help="serial, process, dask, ... (default: serial, or process with --workers > 1).")
@click.option("--scheduler", help="Address of a dask scheduler (tcp://HOST:PORT); implies --executor dask.")
@click.option("--max-failures", type=click.IntRange(min=1), help="Stop the study after this many failed trials.")
@click.option("--trial-timeout", type=float, help="Fail a trial that runs longer than this many seconds.")
@click.option("--batch-trials", type=click.IntRange(min=1), help="Evaluate this many trials as one batch per worker.")
@click.option("--experiment", default="hpt", show_default=True, help="MLflow experiment.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Continue the study logged under this parent run.")
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Also write the study's plots (PNG) to this directory.",
)
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@_guard
def run(**opts: Any) -> None:
    """Run a tuning study and log it to MLflow."""
    from hpt.api import create_study, resume_study

    progress_total = opts["trials"]
    observers: list[StudyObserver] = []
    if opts["resume_id"]:
        trials_given = click.get_current_context().get_parameter_source("trials").name != "DEFAULT"
        study, remaining = resume_study(
            opts["resume_id"],
            opts["tracking_uri"],
            trials=opts["trials"] if trials_given else None,
            workers=opts["workers"],
            executor=opts["executor"] or ("dask" if opts["scheduler"] else None),
            executor_options={"scheduler": opts["scheduler"]} if opts["scheduler"] else None,
            trial_timeout=opts["trial_timeout"],
            max_failures=opts["max_failures"],
            observers=observers,
        )
        progress_total = remaining
    else:
        backend_options = {k: opts[k] for k in BACKEND_FLAGS if opts.get(k) not in (None, False)}
        backend_options.update(_typed(_pairs(opts["backend_opts"], "--backend-option")))
        study = create_study(
            opts["backend"],
            opts["space_file"],
            strategy=opts["strategy"],
            seed=opts["seed"],
            workers=opts["workers"],
            executor=opts["executor"] or ("dask" if opts["scheduler"] else None),
            executor_options={"scheduler": opts["scheduler"]} if opts["scheduler"] else None,
            tracking=opts["tracking_uri"] or True,
            experiment=opts["experiment"],
            strategy_options={
                **{k: opts[k] for k in SCHEDULER_FLAGS if opts.get(k) is not None},
                **_typed(_pairs(opts["strategy_opts"], "--option")),
            },
            prune=opts["prune"],
            prune_options={"warmup_steps": opts["prune_warmup"]} if opts["prune_warmup"] is not None else None,
            backend_options=backend_options,
            overrides=_pairs(opts["sets"], "--set"),
            max_failures=opts["max_failures"],
            trial_timeout=opts["trial_timeout"],
            batch_trials=opts["batch_trials"],
            trials=opts["trials"],
            observers=observers,
        )
        remaining = opts["trials"]
    if not (opts["quiet"] or opts["as_json"]):
        bar = ProgressBar(progress_total)
        study.observers.append(bar)
    from hpt.tracking import MlflowTracker

    tracker = next((o for o in study.observers if isinstance(o, MlflowTracker)), None)
    try:
        if remaining != 0:
            study.optimize(remaining, opts["timeout"])
    except KeyboardInterrupt:
        run_id = tracker.parent_run_id if tracker else None
        click.echo(
            f"interrupted: {study.counts()['complete']} complete trials kept in run {run_id}; "
            f"continue with: hpt run --resume {run_id}",
            err=True,
        )
        sys.exit(130)
    if opts["plots_dir"]:
        from pathlib import Path

        from hpt.tracking import write_study_artifacts

        write_study_artifacts(study, Path(opts["plots_dir"]))
    _summarise(study, tracker, opts["as_json"], opts["quiet"])


def _summarise(study: Any, tracker: Any, as_json: bool, quiet: bool) -> None:
    best = study.best_trial
    summary = {
        "parent_run_id": tracker.parent_run_id if tracker else None,
        "experiment_id": tracker.experiment_id if tracker else None,
        "tracking_uri": tracker.tracking_uri if tracker else None,
        "study": study.name,
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "final_metrics": study.final_metrics,
        "trials": study.counts(),
    }
    if len(study.directions) > 1:
        summary["pareto_front"] = [
            {"trial": t.number, "values": t.values, "params": t.params} for t in study.pareto_front()
        ]
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    if quiet:
        return
    counts = ", ".join(f"{n} {state}" for state, n in study.counts().items() if n)
    click.echo(f"study {study.name}: {counts}")
    if best is None:
        failed = [t for t in study.trials if t.error]
        click.echo(f"no trial completed{'; last error: ' + failed[-1].error if failed else ''}")
    elif len(study.directions) > 1:
        front = study.pareto_front()
        click.echo(f"Pareto front ({len(front)} trials; objectives {', '.join(study.directions)}):")
        for trial in front:
            click.echo(f"  trial {trial.number}: {', '.join(_fmt(v) for v in trial.values)}")
        click.echo(f"best {study.backend.metric} (first objective) {_fmt(best.value)} (trial {best.number})")
        for key, value in study.final_metrics.items():
            click.echo(f"  {key}: {_fmt(value)}")
    else:
        click.echo(f"best {study.backend.metric} {_fmt(best.value)} (trial {best.number})")
        for key, value in best.params.items():
            click.echo(f"  {key} = {value}")
        for key, value in study.final_metrics.items():
            click.echo(f"  {key}: {_fmt(value)}")
    if tracker:
        click.echo(f"MLflow run {tracker.parent_run_id} in {tracker.tracking_uri} (browse: hpt ui)")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List installed strategies, backends and executors, and plugins that failed to load."""
    reg = registry()
    rows = []
    for kind in KINDS:
        for name in reg.names(kind):
            entry = reg.entries[kind][name]
            missing = entry.missing()
            status = f"needs {', '.join(missing)}: {entry.install_hint()}" if missing else "ok"
            rows.append(
                {
                    "kind": kind,
                    "name": name,
                    "distribution": entry.distribution,
                    "version": entry.version,
                    "status": status,
                    "summary": entry.summary,
                }
            )
    broken = [
        {"name": b.name, "distribution": b.distribution, "version": b.version, "reason": b.reason} for b in reg.broken
    ]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "broken": broken}))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for row in rows:
        click.echo(
            f"{row['kind']:<9} {row['name']:<{width}}  {row['distribution']} {row['version']:<8} {row['status']}"
        )
    for b in broken:
        click.echo(f"broken    {b['name']:<{width}}  {b['distribution']} {b['version']:<8} {b['reason']}")


@cli.command()
@click.argument("run_id")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_guard
def best(run_id: str, tracking_uri: str | None, as_json: bool) -> None:
    """Show the best trial (or the Pareto front) of the study logged under RUN_ID."""
    from hpt.tracking import load_study
    from hpt.trial import TrialState, best_trial, pareto_front

    record = load_study(run_id, tracking_uri)
    directions = record.config.get("directions", ["minimize"])
    complete = [t for t in record.trials if t.state is TrialState.COMPLETE and t.values]
    if not complete:
        raise HptError(f"study {run_id} has no complete trial yet")
    if len(directions) > 1:
        front = pareto_front(complete, directions)
        out = {"pareto_front": [{"trial": t.number, "values": t.values, "params": t.params} for t in front]}
        if as_json:
            click.echo(json.dumps(out, default=str))
            return
        click.echo(f"Pareto front ({len(front)} trials; objectives {', '.join(directions)}):")
        for t in front:
            click.echo(f"  trial {t.number}: {[_fmt(v) for v in t.values]} {t.params}")
        return
    winner = best_trial(complete, directions)
    if as_json:
        click.echo(
            json.dumps(
                {"trial": winner.number, "value": winner.value, "params": winner.params, "metrics": winner.metrics},
                default=str,
            )
        )
        return
    click.echo(f"best trial {winner.number}: {_fmt(winner.value)} ({directions[0]})")
    for key, value in winner.params.items():
        click.echo(f"  {key} = {value}")


def main() -> None:
    """Entry point: the built-in commands plus those that plugins add."""
    registry().pm.hook.hpt_register_commands(cli=cli)
    cli()


if __name__ == "__main__":
    main()


__all__ = ["cli", "main"]
