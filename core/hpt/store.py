"""Queries over a store of studies: the parent runs of an experiment, the newest study. What `hpt best`,
`hpt studies` and `hpt importance` look up when no run id is given."""

from __future__ import annotations

from typing import Any

from hpt.errors import HptError

STUDY_TAG = "hpt.strategy"
"""Every study's parent run has it; trial runs and comparison runs do not."""


def study_runs(tracking_uri: str | None, experiment: str) -> list[Any]:
    """The parent runs of the studies in `experiment`, newest first; one clear line for an unknown experiment."""
    from hpt.tracking import make_client

    client = make_client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise HptError(
            f"no experiment {experiment!r} in {client.tracking_uri}; run `hpt run` first or pass --experiment"
        )
    runs, token = [], None
    while True:
        page = client.search_runs(
            [found.experiment_id],
            f"tags.`{STUDY_TAG}` != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
            page_token=token,
        )
        runs += [run for run in page if "mlflow.parentRunId" not in run.data.tags]
        token = page.token
        if not token:
            return runs


def newest_study_run_id(tracking_uri: str | None, experiment: str = "hpt") -> str:
    """The parent run id of the most recently started study in `experiment` (what `hpt best` shows by default)."""
    runs = study_runs(tracking_uri, experiment)
    if not runs:
        raise HptError(f"experiment {experiment!r} holds no study yet; run `hpt run` first")
    return runs[0].info.run_id


__all__ = ["STUDY_TAG", "newest_study_run_id", "study_runs"]
