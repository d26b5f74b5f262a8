"""`hpt studies`: the studies of a store at a glance, newest first (one parent run per study).

hpt studies                          # every experiment of ./mlflow.db
hpt studies --experiment tuning --json
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import click
from hpt.cli_options import guard
from hpt.store import experiment_names, study_runs

COLUMNS = (
    "run_id",
    "experiment",
    "name",
    "strategy",
    "backend",
    "dataset",
    "trials",
    "best",
    "status",
    "start",
    "duration",
)
ELAPSED_TAG = "hpt.elapsed_s"
"""Seconds a study ran, summed over its resumes (the time it was stopped left out)."""


def summarise(run: Any, experiment: str | None = None) -> dict[str, Any]:
    """One study's row: ids, its experiment, plugins, trials by state, best value, status, start time and
    duration (seconds)."""
    tags, info = run.data.tags, run.info
    counts = json.loads(tags["hpt.counts"]) if "hpt.counts" in tags else None
    return {
        "run_id": info.run_id,
        "experiment": experiment,
        "name": info.run_name,
        "strategy": tags.get("hpt.strategy"),
        "backend": tags.get("hpt.backend"),
        "dataset": tags.get("hpt.dataset"),
        "trials": {k: v for k, v in counts.items() if v} if counts is not None else None,
        "best": run.data.metrics.get("best_objective"),
        "direction": tags.get("hpt.direction"),
        "status": info.status,
        "start": datetime.fromtimestamp(info.start_time / 1000).isoformat(timespec="seconds"),
        "duration": duration(run),
        "warm_start": tags.get("hpt.warm_start"),
        "model": "hpt.model" in tags,
    }


def duration(run: Any) -> float | None:
    """Seconds the study ran: the `hpt.elapsed_s` tag of a study that is not running (a resumed study's time
    stopped left out), else from its start to its end (or to now while it runs)."""
    info = run.info
    elapsed = run.data.tags.get(ELAPSED_TAG)
    if elapsed and info.status != "RUNNING":
        return round(float(elapsed), 1)
    end = info.end_time or (None if info.status != "RUNNING" else int(time.time() * 1000))
    return None if end is None else round((end - info.start_time) / 1000, 1)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "trials":
        return ", ".join(f"{n} {state}" for state, n in value.items()) or "0"
    if key == "best":
        return f"{value:.6g}"
    if key == "duration":
        return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"
    return str(value)


def table_text(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    cells = [[_cell(k, row[k]) for k in COLUMNS] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(COLUMNS)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


@click.command()
@click.option("--experiment", help="Only the studies of this MLflow experiment (default: every experiment).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: ./mlflow.db).")
@click.option("--json", "as_json", is_flag=True, help="Print the studies as JSON.")
@guard
def studies(experiment: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """List the studies of a store, newest first: run id, experiment, name, strategy, backend and dataset,
    trials by state, best value, status, start time and duration.

    \b
    hpt studies
    hpt studies --experiment hpt-compare --json
    """
    runs = study_runs(tracking_uri, experiment)
    names = experiment_names(tracking_uri)
    rows = [summarise(run, names.get(run.info.experiment_id)) for run in runs]
    if as_json:
        click.echo(json.dumps({"experiment": experiment, "studies": rows}))
    elif not rows:
        where = f"experiment {experiment!r}" if experiment else "the store"
        click.echo(f"{where} holds no study yet; run `hpt run` first")
    else:
        click.echo(table_text(rows))


__all__ = ["duration", "studies", "summarise"]
