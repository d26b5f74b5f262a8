"""Reading a local SQLite MLflow store with plain SQL, for the commands that only look (`hpt studies`,
the newest study of `hpt best`): MLflow's client takes seconds to import, longer than the question.

Only MLflow's long-stable tables are read (experiments, runs, tags, latest_metrics), read-only; a store
whose schema does not answer (another MLflow layout, a server, a file store) returns None and the caller
asks MLflow instead.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote


@dataclass
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int
    end_time: int | None


@dataclass
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    """The parts of an MLflow run the listing commands read (`run.info.run_id`, `run.data.tags`, ...)."""

    info: RunInfo
    data: RunData


def local_sqlite(tracking_uri: str | None) -> Path | None:
    """The database file of the store `hpt run` would use with this option, when it is an existing local
    SQLite file; None otherwise (then only MLflow knows)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:  # MLflow's default: ./mlflow.db, unless ./mlruns holds a file store's experiments
        path = Path("mlflow.db")
        return path.resolve() if path.is_file() and not _file_store_here() else None
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(unquote(uri.removeprefix("sqlite:///").split("?")[0]))
    return path if path.is_file() else None


def _file_store_here() -> bool:
    mlruns = Path("mlruns")
    return mlruns.is_dir() and any(p.name.isdigit() and (p / "meta.yaml").exists() for p in mlruns.iterdir())


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def experiments(path: Path) -> dict[str, str] | None:
    """id -> name of the store's active experiments; None when the schema does not answer."""
    try:
        with _connect(path) as conn:
            rows = conn.execute("SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active'")
            return {str(i): name for i, name in rows}
    except sqlite3.Error:
        return None


def study_runs(path: Path, study_tag: str, experiment_ids: list[str] | None) -> list[Run] | None:
    """The studies' parent runs (tagged `study_tag`, no parent of their own), newest first, in the given
    experiments (all when None); None when the schema does not answer."""
    where = ""
    args: list[str] = [study_tag]
    if experiment_ids is not None:
        if not experiment_ids:
            return []
        where = f" AND r.experiment_id IN ({','.join('?' * len(experiment_ids))})"
        args += experiment_ids
    query = (
        "SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, r.end_time FROM runs r "
        "JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = ? "
        "WHERE r.lifecycle_stage = 'active' AND NOT EXISTS "
        "(SELECT 1 FROM tags p WHERE p.run_uuid = r.run_uuid AND p.key = 'mlflow.parentRunId')"
        f"{where} ORDER BY r.start_time DESC"
    )
    try:
        with _connect(path) as conn:
            runs = [
                Run(RunInfo(run_id, name or "", str(exp), status, start or 0, end), RunData())
                for run_id, name, exp, status, start, end in conn.execute(query, args)
            ]
            by_id = {run.info.run_id: run for run in runs}
            ids = list(by_id)
            for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for run_id, key, value in conn.execute(
                    f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks})", chunk
                ):
                    by_id[run_id].data.tags[key] = value
                for run_id, key, value in conn.execute(
                    f"SELECT run_uuid, key, value FROM latest_metrics WHERE run_uuid IN ({marks})", chunk
                ):
                    by_id[run_id].data.metrics[key] = value
            return runs
    except sqlite3.Error:
        return None


__all__ = ["Run", "experiments", "local_sqlite", "study_runs"]
