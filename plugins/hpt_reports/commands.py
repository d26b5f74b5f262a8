"""`hpt compare` (strategies x seeds on one task) and `hpt ui` (the MLflow UI on hpt's store).

Only click is imported here; the work's libraries load when a command runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from hpt.cli_options import PluginOptionsCommand, backend_options, guard, pairs, study_options, typed

DEFAULT_EXPERIMENT = "hpt-compare"
"""Where `hpt compare` logs its studies and the comparison run unless told otherwise."""


@click.command(cls=PluginOptionsCommand, plugin_kinds={"backend": "--backend", "strategy": "--strategies"})
@click.option(
    "--strategies",
    default="random,skopt,hyperband",
    show_default=True,
    help="Comma-separated strategies to compare (see `hpt plugins`).",
)
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Seeds per strategy (0..N-1).")
@click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True, help="Trials per study.")
@click.option(
    "-O",
    "--option",
    "strategy_opts",
    multiple=True,
    metavar="[STRATEGY.]KEY=VALUE",
    help="Strategy option: grid.resolution=3 goes to grid only, a bare KEY to every strategy that takes it "
    "(as the strategies' own flags below do).",
)
@study_options
@click.option(
    "--experiment",
    default=DEFAULT_EXPERIMENT,
    show_default=True,
    help="MLflow experiment of the studies and the comparison.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    help="Directory for anytime.png and comparison.json (default: ./hpt-compare-<id>).",
)
@guard
def compare(**opts: Any) -> None:
    """Run every strategy with every seed on the same task and budget; print a table and write an anytime plot.

    \b
    hpt compare --strategies random,skopt,hyperband --seeds 3 --trials 20 --dataset digits
    hpt compare --backend function --function hartmann6 --strategies random,skopt,deap
    hpt compare --strategies hyperband,asha -O sampler=skopt -O max_budget=9 --dataset wine
    """
    from hpt.config import StudyConfig

    from hpt_reports.compare import compare as run_comparison
    from hpt_reports.compare import new_comparison_id

    strategies = [s.strip() for s in opts["strategies"].split(",") if s.strip()]
    cid = new_comparison_id()
    plots = opts["plots_dir"] or f"hpt-compare-{cid}"

    def progress(outcome: Any, index: int, total: int) -> None:
        if not (opts["quiet"] or opts["as_json"]):
            best = "-" if outcome.best_value is None else f"{outcome.best_value:.4g}"
            click.echo(
                f"[{index}/{total}] {outcome.strategy} seed {outcome.seed}: best {best}, "
                f"{outcome.trials} trials, {outcome.failures} failed, {outcome.seconds:.1f} s",
                err=True,
            )

    config = StudyConfig(
        backend=opts["backend"],
        backend_options=backend_options(opts),
        overrides=pairs(opts["sets"], "--set"),
        timeout=opts["timeout"],
        workers=opts["workers"],
        experiment=opts["experiment"],
        tracking_uri=opts["tracking_uri"],
    )
    result = run_comparison(
        None,
        strategies,
        seeds=opts["seeds"],
        trials=opts["trials"],
        space=opts["space_file"],
        config=config,
        strategy_options={**opts["plugin_options"]["strategy"], **typed(pairs(opts["strategy_opts"], "--option"))},
        plots=plots,
        on_study=progress,
        comparison_id=cid,
    )
    if opts["as_json"]:
        click.echo(json.dumps(result.to_dict(), default=str))
        return
    click.echo(result.table_text())
    if not opts["quiet"]:
        click.echo(f"plot: {result.plot}")
        click.echo(
            f"MLflow: experiment {result.experiment!r} in {result.tracking_uri}, runs tagged "
            f"hpt.comparison = '{result.id}', comparison run {result.run_id} (browse: hpt ui)"
        )


def store_uri(tracking_uri: str | None) -> str:
    """The tracking URI `hpt run` would log to with this option: the given one, MLFLOW_TRACKING_URI, or
    MLflow's default store (a SQLite file in the working directory), as an absolute URI."""
    from hpt.tracking import make_client

    return make_client(tracking_uri).tracking_uri


def server_command(uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The `mlflow server` command line that serves the UI and REST API on the store at `uri`."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


@click.command()
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow store to browse (default: ./mlflow.db).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="Port to listen on.")
@click.option("--experiment", default="hpt", show_default=True, help="Experiment whose runs table to open.")
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open the runs table in a browser.")
def ui(tracking_uri: str | None, host: str, port: int, experiment: str, browser: bool) -> None:
    """Start the MLflow UI on the store `hpt run` logs to, print the address of the experiment's runs table
    (the studies, with their trials under them) and open it (Ctrl-C stops the server)."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):  # checked before store_uri reaches it
        click.echo(f"{tracking_uri} is an MLflow server already: open it in a browser")
        return
    uri = store_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        click.echo(f"note: {uri} does not exist yet; it is created empty (run `hpt run` here first)", err=True)
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    page = f"http://{shown}:{port}/{runs_page(uri, experiment)}"
    click.echo(f"MLflow UI for {uri} on http://{shown}:{port}; the studies: {page} (Ctrl-C stops it)")
    sys.stdout.flush()
    server = subprocess.Popen(server_command(uri, host, port), start_new_session=True)
    if browser:
        threading.Thread(target=_open_when_up, args=(f"http://{shown}:{port}", page, server), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` stops the server too
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        _stop(server)
    if code:
        raise click.ClickException(f"mlflow server exited with status {code} (is port {port} in use? try --port)")


def runs_page(uri: str, experiment: str) -> str:
    """The UI's path to the experiment's runs table, where studies are parent runs with their trials under
    them. `workflowType=machine_learning` switches MLflow 3's UI to its model-training side (it remembers
    the choice), which otherwise opens on a GenAI overview of traces; the experiment's kind tag says the
    same to UIs that read it (one made before hpt set the tag gets it here)."""
    from hpt.tracking import EXPERIMENT_KIND, make_client

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return ""
    client = make_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return ""
    if found.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND:
        client.set_experiment_tag(found.experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND)
    return f"#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"


def _open_when_up(base: str, page: str, server: subprocess.Popen) -> None:
    """Open `page` in the user's browser once the server answers (nothing happens on a machine without one)."""
    import urllib.request
    import webbrowser

    for _ in range(240):
        if server.poll() is not None:
            return
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                webbrowser.open(page)
                return
        except OSError:
            time.sleep(0.5)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and the workers it started (its own process group)."""
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


__all__ = ["compare", "server_command", "store_uri", "ui"]
