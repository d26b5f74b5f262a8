"""`hpt lr-find`: the learning-rate range test on a dataset, with a plot and a suggested rate.

Only click is imported at start-up; torch loads when the command runs.
"""

from __future__ import annotations

import json
import sys

import click


@click.command("lr-find")
@click.option("--dataset", default="digits", show_default=True, help="Bundled or synthetic dataset.")
@click.option("--data", type=click.Path(), help="A CSV file (with --target) instead of --dataset.")
@click.option("--target", help="Target column of --data.")
@click.option("--size", type=int, help="Rows of a synthetic dataset (or a subsample of a bundled one).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--set", "sets", multiple=True, metavar="NAME=VALUE", help="Pin a hyperparameter: optimizer=sgd, n_neurons=128."
)
@click.option("--start", type=float, default=1e-5, show_default=True, help="First learning rate.")
@click.option("--end", type=float, default=10.0, show_default=True, help="Last learning rate.")
@click.option("--steps", type=int, default=200, show_default=True, help="Batches over which the rate grows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--plot", "plot_path", default="lr_find.png", show_default=True, help="Where to save the loss-vs-rate plot."
)
@click.option("--no-plot", is_flag=True, help="Do not save a plot.")
@click.option("--experiment", default="hpt", show_default=True, help="MLflow experiment of the lr-find run.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@click.option("--no-tracking", is_flag=True, help="Do not log the test to MLflow.")
@click.option("--json", "as_json", is_flag=True, help="Print the rates, losses and suggestion as JSON.")
def lr_find(
    dataset: str,
    data: str | None,
    target: str | None,
    size: int | None,
    device: str,
    sets: tuple[str, ...],
    start: float,
    end: float,
    steps: int,
    seed: int,
    plot_path: str,
    no_plot: bool,
    experiment: str,
    tracking_uri: str | None,
    no_tracking: bool,
    as_json: bool,
) -> None:
    """Raise the learning rate exponentially over a few hundred batches and suggest a tenth of the
    rate where the training loss turns up (the MLP's default architecture unless --set changes it)."""
    from hpt.errors import HptError
    from hpt.plugins import registry

    try:
        backend = (
            registry().get("backend", "mlp").load()(dataset=dataset, data=data, target=target, size=size, device=device)
        )
        finding = backend.find_learning_rate(
            _pinned(backend.default_space(), sets), seed=seed, start=start, end=end, steps=steps
        )
        saved = None if no_plot else str(finding.plot(plot_path))
        run_id = None if no_tracking else _log_to_mlflow(finding, saved, backend, sets, tracking_uri, experiment)
    except HptError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot save the plot to {plot_path!r}: {exc.strerror}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "suggestion": finding.suggestion,
                    "min_loss_rate": finding.min_loss_rate,
                    "learning_rates": finding.learning_rates,
                    "losses": finding.losses,
                    "plot": saved,
                    "mlflow_run_id": run_id,
                }
            )
        )
        return
    click.echo(
        f"suggested learning rate: {finding.suggestion:.3g} "
        f"(a tenth of {finding.min_loss_rate:.3g}, where the smoothed loss is lowest)"
    )
    if saved:
        click.echo(f"plot: {saved}")
    if run_id:
        click.echo(f"MLflow run {run_id}")


def _log_to_mlflow(finding, plot: str | None, backend, sets: tuple[str, ...], uri: str | None, experiment: str) -> str:
    """One run named `lr-find-<dataset>`: the pinned settings, the suggestion and the plot."""
    from hpt.tracking import make_client
    from mlflow.entities import Metric, Param

    client = make_client(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=f"lr-find-{backend.dataset}", tags={"hpt.command": "lr-find"})
    run_id = run.info.run_id
    params = [Param("dataset", backend.dataset), *(Param(*item.split("=", 1)) for item in sets)]
    metrics = [Metric("suggested_learning_rate", finding.suggestion, 0, 0)]
    metrics += [Metric("min_loss_learning_rate", finding.min_loss_rate, 0, 0)]
    client.log_batch(run_id, metrics=metrics, params=params)
    if plot:
        client.log_artifact(run_id, plot)
    client.set_terminated(run_id)
    return run_id


def _pinned(space, sets: tuple[str, ...]) -> dict:
    """`--set name=value` pairs as typed hyperparameter values."""
    from hpt.errors import HptError

    params = {}
    for item in sets:
        name, sep, text = item.partition("=")
        if not sep or name.strip() not in space:
            raise HptError(f"--set {item!r}: expected NAME=VALUE with NAME one of {', '.join(space)}")
        params[name.strip()] = space[name.strip()].parse(text.strip())
    return params
