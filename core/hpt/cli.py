"""The `hpt` command line. Heavy libraries (MLflow, PyTorch, scikit-optimize) load only when a
command needs them, so `hpt --help` and `hpt plugins` start fast."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hpt.cli_options import PluginOptionsCommand, backend_options, guard, pairs, study_options, typed
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.observers import StudyObserver
from hpt.plugins import KINDS, registry
from hpt.progress import fmt as _fmt

if TYPE_CHECKING:
    from hpt.trial import Trial


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
    "--force", is_flag=True, help="With --resume: take the study over even if another runner's lease is live."
)
@click.option(
    "--warm-start", metavar="RUN_ID", help="Tell the strategy the finished trials of this earlier study first."
)
@click.option("--register-model", metavar="NAME", help="Register the best trial's model in the MLflow Model Registry.")
@click.option(
    "--checkpoint-root",
    metavar="PATH|URL",
    help="Where trials keep checkpoints: a folder or a URL every worker reaches (file://, s3://; docs/cluster.md).",
)
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
    with _logging(opts["quiet"], opts["as_json"]):
        if opts["as_json"]:  # stdout holds the JSON summary alone, whatever a library prints on the way
            with contextlib.redirect_stdout(sys.stderr):
                summary = _run(opts)
            click.echo(json.dumps(summary, default=str))
        else:
            _run(opts)


def _run(opts: dict[str, Any]) -> dict[str, Any]:
    from hpt.api import create_study, resume_study, trials_done
    from hpt.signals import Stopped, stop_on_signals

    talk = not (opts["quiet"] or opts["as_json"])
    observers: list[StudyObserver] = []
    plugin_options = opts["plugin_options"]
    executor_options = plugin_options.get("executor", {})
    if opts["resume_id"]:
        given = click.get_current_context().get_parameter_source("trials").name != "DEFAULT"
        study, remaining = resume_study(
            opts["resume_id"],
            opts["tracking_uri"],
            force=opts["force"],
            trials=opts["trials"] if given else None,
            workers=opts["workers"],
            executor=opts["executor"],
            executor_options=executor_options or None,
            trial_timeout=opts["trial_timeout"],
            max_failures=opts["max_failures"],
            observers=observers,
        )
        if talk:
            done, total = trials_done(study.trials), study.config.trials
            click.echo(
                f"resuming {study.name}: {done} trials done, {remaining} to run, {total} in all "
                f"(--trials sets the total)",
                err=True,
            )
    else:
        study = create_study(None, opts["space_file"], config=_config(opts), observers=observers)
        remaining = opts["trials"]
    if talk:
        from hpt.progress import ProgressBar, TrialLines

        study.observers.append(ProgressBar(remaining) if sys.stderr.isatty() else TrialLines(remaining))
    tracker = study.tracker

    def hurry(signum: int) -> None:
        click.echo("stopping already: finishing the writes to the store (they are in the journal)", err=True)
        if tracker is not None and tracker.sync is not None:
            tracker.grace = 0.0

    with stop_on_signals(hurry):  # until the exit: a later signal must not cut the last lines short
        try:
            if remaining != 0:
                study.optimize(remaining, study.config.timeout)
        except Stopped as stop:
            _stopped(study, tracker, stop.exit_code)
        except KeyboardInterrupt:
            _stopped(study, tracker, 130)
        except HptError as exc:
            if tracker is not None and tracker.parent_run_id is not None:
                raise HptError(f"{exc}; finished trials are kept: hpt run --resume {tracker.parent_run_id}") from None
            raise
    if opts["plots_dir"]:
        from hpt.tracking import write_study_artifacts

        write_study_artifacts(study, Path(opts["plots_dir"]))
    summary = _summarise(study, tracker, opts["as_json"], opts["quiet"])
    _check_store(tracker)
    return summary


def _config(opts: dict[str, Any]) -> StudyConfig:
    plugin_options = opts["plugin_options"]
    return StudyConfig(
        backend=opts["backend"],
        backend_options=backend_options(opts),
        strategy=opts["strategy"],
        strategy_options={
            **plugin_options.get("strategy", {}),
            **typed(pairs(opts["strategy_opts"], "--option")),
        },
        executor=opts["executor"],
        executor_options=plugin_options.get("executor", {}),
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
        checkpoint_root=opts["checkpoint_root"],
    )


@contextlib.contextmanager
def _logging(quiet: bool, as_json: bool) -> Iterator[None]:
    """hpt's and its plugins' log lines on stderr while a study runs: INFO normally, warnings with --json,
    errors with --quiet. The loggers' levels come back afterwards (a test may run the command many times)."""
    import logging

    level = logging.ERROR if quiet else logging.WARNING if as_json else logging.INFO
    names = {"hpt"} | {module.__name__.split(".")[0] for module in registry().pm.get_plugins()}
    loggers = [logging.getLogger(name) for name in names if name.startswith("hpt")]
    previous = [logger.level for logger in loggers]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(lambda record: record.name.split(".")[0].startswith("hpt"))
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(level)
    for logger in loggers:
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, old in zip(loggers, previous, strict=True):
            logger.setLevel(old)
            logger.removeHandler(handler)
            logger.propagate = True


def _store_line(tracker: Any) -> str | None:
    """What the store still lacks at the end, and how to send it; None when it holds everything."""
    if tracker is None or tracker.sync is None or not (tracker.unsynced or tracker.sync.rejected):
        return None
    if tracker.sync.rejected:
        return (
            f"the tracking store {tracker.tracking_uri} refused {len(tracker.sync.rejected)} writes "
            f"(first: {tracker.sync.rejected[0]}); the journal keeps them in {tracker.journal.directory}"
        )
    return (
        f"the tracking store {tracker.tracking_uri} is unreachable ({tracker.sync.last_error}): "
        f"{tracker.sync.waiting_trials()} trials and the study's results are kept in {tracker.journal.directory}; "
        f"send them with: hpt sync {tracker.parent_run_id}"
    )


def _check_store(tracker: Any) -> None:
    line = _store_line(tracker)
    if line is not None:
        click.echo(f"error: {line}", err=True)
        sys.exit(1)


def _stopped(study: Any, tracker: Any, code: int) -> None:
    run_id = tracker.parent_run_id if tracker else None
    click.echo(
        f"stopped: {study.counts()['complete']} complete trials kept in run {run_id}; "
        f"continue with: hpt run --resume {run_id}",
        err=True,
    )
    line = _store_line(tracker)
    if line is not None:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _summarise(study: Any, tracker: Any, as_json: bool, quiet: bool) -> dict[str, Any]:
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
    if as_json or quiet:
        return summary
    counts = ", ".join(f"{n} {state}" for state, n in study.counts().items() if n)
    click.echo(f"study {study.name}: {counts}")
    if study.warm_started is not None:
        click.echo(study.warm_started.summary())
    if best is None:
        failed = [t for t in study.trials if t.error]
        click.echo(f"no trial completed{'; last error: ' + failed[-1].error if failed else ''}")
    elif len(study.directions) > 1:
        _echo_front(study.pareto_front(), _objective_labels(study.backend, study.directions), study.directions)
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
    return summary


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
    metric = record.parent_tags.get("hpt.metric", "objective")
    scores = {k: v for k, v in record.parent_metrics.items() if k.startswith("test_")}
    complete = [t for t in record.trials if t.state is TrialState.COMPLETE and t.values]
    if not complete:
        raise HptError(f"study {record.name or run_id} has no complete trial yet")
    head = {"study": record.name, "run_id": run_id, "metric": metric, "directions": directions}
    if len(directions) > 1:
        front = pareto_front(complete, directions)
        labels = _labels_from_metric(metric, len(directions))
        out = {
            **head,
            "objectives": labels,
            "pareto_front": [{"trial": t.number, "values": t.values, "params": t.params} for t in front],
        }
        if as_json:
            click.echo(json.dumps(out, default=str))
            return
        click.echo(f"study {record.name} ({run_id})")
        _echo_front(front, labels, directions)
        return
    winner = best_trial(complete, directions)
    if as_json:
        out = {
            **head,
            "trial": winner.number,
            "value": winner.value,
            "params": winner.params,
            "metrics": winner.metrics,
            "test_scores": scores,
        }
        click.echo(json.dumps(out, default=str))
        return
    click.echo(f"study {record.name} ({run_id})")
    click.echo(f"best trial {winner.number}: {metric} {_fmt(winner.value)} ({directions[0]})")
    for key, value in winner.params.items():
        click.echo(f"  {key} = {value}")
    for key, value in scores.items():
        click.echo(f"  {key}: {_fmt(value)}")


def _labels_from_metric(metric: str, n: int) -> list[str]:
    names = [m.strip() for m in metric.split(",") if m.strip()]
    return names if len(names) == n else [f"objective {i + 1}" for i in range(n)]


def _objective_labels(backend: Any, directions: Any) -> list[str]:
    """The names of a multi-objective study's objectives (`valid_loss`, `n_params`), else numbered."""
    names = [name for name, _ in getattr(backend, "objectives", ())]
    return names if len(names) == len(directions) else [f"objective {i + 1}" for i in range(len(directions))]


def _echo_front(front: list[Trial], labels: list[str], directions: Any) -> None:
    """The Pareto front: each point's objectives by name, and its hyperparameters."""
    heading = ", ".join(f"{label} ({d})" for label, d in zip(labels, directions, strict=True))
    click.echo(f"Pareto front, {len(front)} trials; objectives {heading}:")
    for t in sorted(front, key=lambda t: t.values[0]):
        values = ", ".join(f"{label} {_fmt(v)}" for label, v in zip(labels, t.values, strict=True))
        params = ", ".join(f"{k}={v}" for k, v in t.params.items())
        click.echo(f"  trial {t.number}: {values} | {params}")


@cli.command()
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option(
    "--retry-for",
    "retry_for",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to retry an absent store.",
)
@guard
def sync(run_ids: tuple[str, ...], retry_for: float) -> None:
    """Send what this machine's journals hold to their tracking stores (studies whose store was away).

    Without RUN_ID, every journal of a study that is not running. A journal whose store then holds
    everything is deleted.
    """
    from hpt.journal import Journal, JournalLocked
    from hpt.lease import release
    from hpt.store_client import make_client
    from hpt.store_sync import replay

    journals = [Journal.existing(r) for r in run_ids] if run_ids else Journal.all()
    missing = [r for r, j in zip(run_ids, journals, strict=False) if j is None]
    if missing:
        raise HptError(f"no journal of study {missing[0]} on this machine (it may be in the store already)")
    failed = 0
    for journal in journals:
        try:
            journal.lock()
        except JournalLocked as exc:
            click.echo(f"skipped: {exc}", err=True)
            continue
        header = journal.header() or {}
        uri = header.get("tracking_uri")
        try:
            sent = replay(make_client(uri), journal, retry_for)
        except HptError as exc:
            journal.unlock()
            click.echo(f"study {journal.run_id}: {exc}", err=True)
            failed += 1
            continue
        if sent.pending() == 0:
            release(make_client(uri), journal.run_id)
            journal.remove()
            rejected = f" ({len(sent.rejected)} writes refused: {sent.rejected[0]})" if sent.rejected else ""
            click.echo(f"study {journal.run_id}: the store {uri} holds everything{rejected}")
        else:
            journal.unlock()
            failed += 1
            click.echo(
                f"study {journal.run_id}: {sent.pending()} writes still waiting; the store {uri} is unreachable "
                f"({sent.last_error}); run hpt sync again later",
                err=True,
            )
    if failed:
        sys.exit(1)


def main() -> None:
    """Entry point: the built-in commands plus those that plugins add."""
    registry().pm.hook.hpt_register_commands(cli=cli)
    cli()


if __name__ == "__main__":
    main()


__all__ = ["cli", "main"]
