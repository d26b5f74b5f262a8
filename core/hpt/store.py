"""Queries over a store of studies: the parent runs of an experiment, the newest study. What `hpt best`,
`hpt studies` and `hpt importance` look up when no run id is given."""

from __future__ import annotations

from typing import Any

from hpt.errors import HptError

STUDY_TAG = "hpt.strategy"
"""Every study's parent run has it; trial runs and comparison runs do not."""


def study_runs(tracking_uri: str | None, experiment: str | None = None) -> list[Any]:
    """The parent runs of the studies in `experiment` (in every experiment when None), newest first; one clear
    line for an unknown experiment, naming the experiments there are. A local SQLite store is read with
    plain SQL (`hpt.store_reader`), without importing MLflow."""
    fast = _study_runs_sqlite(tracking_uri, experiment)
    if fast is not None:
        return fast
    from hpt.tracking import make_client

    client = make_client(tracking_uri)
    if experiment is None:
        ids = [e.experiment_id for e in _experiments(client)]
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = ", ".join(repr(e.name) for e in _experiments(client)) or "none"
            raise HptError(
                f"no experiment {experiment!r} in {client.tracking_uri} (its experiments: {names}); "
                "pass one of them as --experiment, or run `hpt run` first"
            )
        ids = [found.experiment_id]
    runs, token = [], None
    while ids:
        page = client.search_runs(
            ids,
            f"tags.`{STUDY_TAG}` != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
            page_token=token,
        )
        runs += [run for run in page if "mlflow.parentRunId" not in run.data.tags]
        token = page.token
        if not token:
            break
    return runs


def _study_runs_sqlite(tracking_uri: str | None, experiment: str | None) -> list[Any] | None:
    from hpt import store_reader

    path = store_reader.local_sqlite(tracking_uri)
    found = store_reader.experiments(path) if path is not None else None
    if found is None:
        return None
    ids = None
    if experiment is not None:
        ids = [i for i, name in found.items() if name == experiment]
        if not ids:
            names = ", ".join(repr(n) for n in found.values()) or "none"
            raise HptError(
                f"no experiment {experiment!r} in sqlite:///{path} (its experiments: {names}); "
                "pass one of them as --experiment, or run `hpt run` first"
            )
    return store_reader.study_runs(path, STUDY_TAG, ids)


def experiment_names(tracking_uri: str | None) -> dict[str, str]:
    """The store's experiments (deleted ones aside): id -> name."""
    from hpt import store_reader

    path = store_reader.local_sqlite(tracking_uri)
    found = store_reader.experiments(path) if path is not None else None
    if found is not None:
        return found
    from hpt.tracking import make_client

    return {e.experiment_id: e.name for e in _experiments(make_client(tracking_uri))}


def _experiments(client: Any) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def newest_study_run_id(tracking_uri: str | None, experiment: str = "hpt") -> str:
    """The parent run id of the most recently started study in `experiment` (what `hpt best` shows by default)."""
    runs = study_runs(tracking_uri, experiment)
    if not runs:
        raise HptError(f"experiment {experiment!r} holds no study yet; run `hpt run` first")
    return runs[0].info.run_id


__all__ = ["STUDY_TAG", "experiment_names", "newest_study_run_id", "study_runs"]
