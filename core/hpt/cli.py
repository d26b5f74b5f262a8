"""The `hpt` command line. Heavy libraries (MLflow, PyTorch, scikit-optimize) load only when a
command needs them, so `hpt --help` and `hpt plugins` start fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hpt.cli_options import PluginOptionsCommand, backend_options, guard, pairs, study_options, typed
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.observers import StudyObserver
from hpt.plugins import KINDS, registry

if TYPE_CHECKING:
    from hpt.study import Study
    from hpt.trial import Trial


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

    def study_started(self, study: Study) -> None:
        self.progress.start()

    def trial_finished(self, study: Study, trial: Trial) -> None:
        self.progress.update(self.task, advance=1, best=_fmt(study.best_value))

    def study_finished(self, study: Study, status: str) -> None:
        self.progress.stop()


class _BatchTrials(click.ParamType):
    """`--batch-trials K` or `auto` (the backend picks K for its device)."""

    name = "K|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if value == "auto" or isinstance(value, int):
            return value
        try:
            k = int(value)
        except ValueError:
            k = 0
        if k < 1:
            self.fail(f"{value!r} is neither a positive integer nor auto", param, ctx)
        return k


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpt")
def cli() -> None:
    """hpt: hyperparameter tuning for neural networks, tracked in MLflow."""


@cli.command(cls=PluginOptionsCommand)
@click.option("--strategy", help="Search strategy (see `hpt plugins`; default: the registered default).")
@click.option("-O", "--option", "strategy_opts", multiple=True, metavar="KEY=VALUE", help="A strategy option.")
@click.option("--executor", help="Where trials run (default: this process, or local processes with --workers > 1).")
@click.option("--prune", type=click.Choice(["none", "median"]), help="Stop trials whose curve is below the median.")
@click.option("--prune-warmup", type=int, help="Steps (epochs) before --prune judges a trial (default 2).")
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Number of trials; with --resume, the new total (the trials the study has count).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (strategy and trials).")
@study_options
@click.option("--max-failures", type=click.IntRange(min=1), help="Stop the study after this many failed trials.")
@click.option("--trial-timeout", type=float, help="Fail a trial that runs longer than this many seconds.")
@click.option(
    "--batch-trials",
    type=_BatchTrials(),
    help="Evaluate K trials as one batch per worker (auto: as many as pay off on the backend's device).",
)
@click.option("--experiment", default="hpt", show_default=True, help="MLflow experiment.")
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Continue the study logged under this parent run.")
@click.option(
    "--warm-start", metavar="RUN_ID", help="Tell the strategy the finished trials of this earlier study first."
)
@click.option("--register-model", metavar="NAME", help="Register the best trial's model in the MLflow Model Registry.")
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Also write the study's end-of-study files (plots, reports) to this directory.",
)
@guard
def run(**opts: Any) -> None:
    """Run a tuning study and log it to MLflow.

    The flags of the chosen backend, strategy and executor (the registered defaults without
    --backend / --strategy / --executor) are listed below the common options.
    """
    from hpt.api import create_study, resume_study

    observers: list[StudyObserver] = []
    plugin_options = opts["plugin_options"]
    executor_options = plugin_options.get("executor", {})
    if opts["resume_id"]:
        given = click.get_current_context().get_parameter_source("trials").name != "DEFAULT"
        study, remaining = resume_study(
            opts["resume_id"],
            opts["tracking_uri"],
            trials=opts["trials"] if given else None,
            workers=opts["workers"],
            executor=opts["executor"],
            executor_options=executor_options or None,
            trial_timeout=opts["trial_timeout"],
            max_failures=opts["max_failures"],
            observers=observers,
        )
        if not (opts["quiet"] or opts["as_json"]):
            done = len(study.trials) - len(study._queue)
            click.echo(
                f"resuming {study.name}: {done} trials done, {remaining} to run "
                f"(--trials {study.config.trials} is the new total)",
                err=True,
            )
    else:
        config = StudyConfig(
            backend=opts["backend"],
            backend_options=backend_options(opts),
            strategy=opts["strategy"],
            strategy_options={
                **plugin_options.get("strategy", {}),
                **typed(pairs(opts["strategy_opts"], "--option")),
            },
            executor=opts["executor"],
            executor_options=executor_options,
            workers=opts["workers"],
            directions=None,
            seed=opts["seed"],
            trials=opts["trials"],
            timeout=opts["timeout"],
            overrides=pairs(opts["sets"], "--set"),
            prune=opts["prune"],
            prune_options={"warmup_steps": opts["prune_warmup"]} if opts["prune_warmup"] is not None else {},
            batch_trials=opts["batch_trials"],
            max_failures=opts["max_failures"],
            trial_timeout=opts["trial_timeout"],
            experiment=opts["experiment"],
            tracking_uri=opts["tracking_uri"],
            warm_start=opts["warm_start"],
            register_model=opts["register_model"],
        )
        study = create_study(None, opts["space_file"], config=config, observers=observers)
        remaining = opts["trials"]
    if not (opts["quiet"] or opts["as_json"]):
        study.observers.append(ProgressBar(remaining))
    tracker = study.tracker
    try:
        if remaining != 0:
            study.optimize(remaining, study.config.timeout)
    except KeyboardInterrupt:
        run_id = tracker.parent_run_id if tracker else None
        click.echo(
            f"interrupted: {study.counts()['complete']} complete trials kept in run {run_id}; "
            f"continue with: hpt run --resume {run_id}",
            err=True,
        )
        sys.exit(130)
    if opts["plots_dir"]:
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
    if study.warm_started is not None:
        click.echo(study.warm_started.summary())
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
                    "default": entry.default,
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
        status = row["status"] + (" (default)" if row["default"] else "")
        click.echo(f"{row['kind']:<9} {row['name']:<{width}}  {row['distribution']} {row['version']:<8} {status}")
    for b in broken:
        click.echo(f"broken    {b['name']:<{width}}  {b['distribution']} {b['version']:<8} {b['reason']}")


@cli.command()
@click.argument("run_id", required=False)
@click.option("--experiment", default="hpt", show_default=True, help="Experiment of the newest study (no RUN_ID).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guard
def best(run_id: str | None, experiment: str, tracking_uri: str | None, as_json: bool) -> None:
    """Show the best trial (or the Pareto front) of the study logged under RUN_ID (default: the newest study)."""
    from hpt.store import newest_study_run_id
    from hpt.tracking import load_study
    from hpt.trial import TrialState, best_trial, pareto_front

    run_id = run_id or newest_study_run_id(tracking_uri, experiment)
    record = load_study(run_id, tracking_uri)
    directions = record.config.directions or ["minimize"]
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
