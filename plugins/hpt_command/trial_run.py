"""The trial's MLflow child run, seen from the worker: what the script logged into it (read while the
script runs and once it has exited) and its stdout and stderr, kept there as artifacts.

The run exists before the script starts (the backend sets `needs_trial_run`), and the script is handed
it through MLFLOW_RUN_ID and MLFLOW_TRACKING_URI, so `mlflow.log_metric` and `mlflow.autolog()` write into
it. MLflow is imported here only, on first use in a worker.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _client(tracking_uri: str | None) -> Any:
    """One client per store and worker process: building one (a SQLite engine) costs more than a read."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


class TrialRun:
    """Reads the values of `metric` the script logs into run `run_id`, each once."""

    def __init__(self, run_id: str, tracking_uri: str | None, metric: str) -> None:
        self.run_id = run_id
        self.metric = metric
        self.client = _client(tracking_uri)
        self.earlier = self._history()
        """Values already in the run before this script started: those of a promoted trial's lower budgets."""
        self.new: list[tuple[int, float]] = []

    def _history(self) -> list[tuple[int, float]]:
        entries = self.client.get_metric_history(self.run_id, self.metric)
        return [(m.step, m.value) for m in sorted(entries, key=lambda m: (m.timestamp, m.step))]

    def poll(self) -> list[tuple[int, float]]:
        """The (step, value) pairs logged since the last poll."""
        history = self._history()
        fresh = history[len(self.earlier) + len(self.new) :]
        self.new.extend(fresh)
        return fresh

    def keep_logs(self, log_dir: Path, artifact_path: str) -> None:
        """Log the files of `log_dir` (stdout.txt, stderr.txt) as artifacts of the run; a failure to is logged
        and does not fail the trial."""
        try:
            self.client.log_artifacts(self.run_id, str(log_dir), artifact_path)
        except Exception as exc:  # the trial's result stands without its logs
            log.warning("could not keep the script's output in run %s: %s", self.run_id, exc)
