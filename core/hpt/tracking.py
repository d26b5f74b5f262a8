"""MLflow tracking: one parent run per study, one child run per trial, through a local journal.

The tracker turns study events into writes for the store and appends each to the study's journal
(`hpt.journal`) before anything is sent; one background thread (`hpt.store_sync`) sends them, merged
into `log_batch` calls, and retries while the store is away. So trials never wait on the store, a
SQLite store is never written concurrently, and nothing that finished is lost when the store fails:
at the end the study waits a grace period for the store, and what it still lacks stays in the journal
for `hpt sync` or a resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt import lease
from hpt.checkpoints import fetched
from hpt.errors import HptError
from hpt.journal import Journal, JournalError
from hpt.observers import StudyObserver
from hpt.store_client import make_client, store_errors
from hpt.store_sync import PARENT, StoreSync
from hpt.study_record import (
    CONFIG_ARTIFACT,
    ELAPSED_TAG,
    SPACE_ARTIFACT,
    StudyRecord,
    load_study,
    objective_names,
)
from hpt.trial import INTERRUPTED, REQUEUED, Trial, TrialState

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from hpt.study import Study

log = logging.getLogger(__name__)

BEST_METRIC = "best_objective"
"""The best value so far, stepped by finished evaluations (an anytime curve that only improves)."""
EVALUATIONS_TAG = "hpt.evaluations"
MODEL_ARTIFACT = "model"
"""Artifact path of the best trial's MLflow model on the parent run."""
GRACE_ENV = "HPT_SYNC_GRACE"
EXPERIMENT_KIND = "custom_model_development"
"""The `mlflow.experimentKind` of hpt's experiments: MLflow 3 opens them on the runs table, not the GenAI
overview."""
_RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED", TrialState.FAILED: "FAILED"}


def sync_grace() -> float:
    """Seconds a finished study waits for an unreachable store before it gives up (`HPT_SYNC_GRACE`, 60)."""
    return float(os.environ.get(GRACE_ENV, "60"))


class MlflowTracker(StudyObserver):
    """Logs a study to MLflow as docs/mlflow.md lays it out (parent run + child run per trial)."""

    critical = True

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "hpt",
        resume: StudyRecord | None = None,
        grace: float | None = None,
    ):
        self.client = make_client(tracking_uri)
        self.tracking_uri = self.client.tracking_uri
        self.experiment = experiment
        self.resume = resume
        self.grace = sync_grace() if grace is None else grace
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.journal: Journal | None = None
        self.sync: StoreSync | None = None
        self.unsynced = 0
        """Journal records the store still lacked when the study ended (0: it holds everything)."""
        self.broken: JournalError | None = None
        self._steps_logged: dict[int, int] = {}
        self._runs: set[int] = set()  # trials that have a child run (created in the background)
        self._metrics_logged: dict[int, dict[str, float]] = {}
        self._evaluations = 0
        self._elapsed = resume.elapsed if resume else 0.0
        self._opened_at = time.monotonic()
        self._renewed_at = 0.0

    # What the study and the CLI ask
    def trial_run_id(self, number: int) -> str | None:
        """The MLflow run of trial `number`, once it exists (at once for a backend that `needs_trial_run`)."""
        return self.sync.run_ids.get(number) if self.sync else None

    def outage(self) -> tuple[float, int] | None:
        """(since when, trials waiting) while the store does not take writes; None while it does."""
        if self.sync is None or self.sync.failing_since is None:
            return None
        return self.sync.failing_since, self.sync.waiting_trials()

    # Writing: journal first, then the store in the background
    def _record(self, record: dict[str, Any]) -> None:
        if self.broken is not None or self.journal is None or self.sync is None:
            return
        try:
            self.journal.append(record)
        except JournalError as exc:
            self.broken = exc
            raise
        self.sync.notify()

    def _log(self, key: Any, metrics=(), params=None, tags=None) -> None:
        now = int(time.time() * 1000)
        self._record(
            {
                "op": "log",
                "key": key,
                "metrics": [[k, float(v), now, int(s)] for k, v, s in metrics],
                "params": {k: str(v) for k, v in (params or {}).items()},
                "tags": {k: str(v) for k, v in (tags or {}).items()},
            }
        )

    def _call(self, key: Any, method: str, *args: Any) -> None:
        self._record({"op": "call", "key": key, "method": method, "args": list(args)})

    def _terminate(self, key: Any, status: str) -> None:
        self._call(key, "set_terminated", status, int(time.time() * 1000))

    def _snapshot(self, trial: Trial) -> None:
        self._record({"op": "trial", "trial": trial.to_record()})

    # Study events
    def study_started(self, study: Study) -> None:
        self._opened_at = time.monotonic()
        if self.parent_run_id is not None:  # the same study optimised again: reopen its run
            self._open_journal(self.parent_run_id, self.sync.run_ids if self.sync else {})
            self._call(PARENT, "update_run", "RUNNING")
            return
        if self.resume is not None:
            self._reopen(study, self.resume)
        else:
            self._create(study)

    def _create(self, study: Study) -> None:
        tags = {
            "hpt.strategy": study.strategy.name,
            "hpt.backend": study.backend.name,
            "hpt.seed": str(study.seed),
            "hpt.direction": ",".join(study.directions),
            "hpt.metric": study.backend.metric,
            **study.backend.tags(),
            **study.config.tags,
        }
        warm = study.warm_started
        if warm is not None:
            tags["hpt.warm_start"] = warm.source_run_id
            tags["hpt.warm_start_trials"] = str(len(warm.trials))
            tags["hpt.warm_start_skipped"] = str(warm.skipped)
        with store_errors(self.tracking_uri):  # a store that cannot be written stops the study here
            self.experiment_id = self._experiment_id()
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=study.name)
            self.parent_run_id = run.info.run_id
            lease.renew(self.client, self.parent_run_id)
        try:
            self._open_journal(self.parent_run_id, {})
        except HptError:
            self._give_up_parent()
            raise
        self._write_header(study)
        self._log(PARENT, params=study.config.to_params())
        self._call(PARENT, "log_text", json.dumps(study.config.to_dict(), indent=2, default=str), CONFIG_ARTIFACT)
        self._call(PARENT, "log_text", json.dumps(study.space.to_dict(), indent=2), SPACE_ARTIFACT)

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(self.experiment, tags={"mlflow.experimentKind": EXPERIMENT_KIND})
        except MlflowException:
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return exp.experiment_id  # created by a study that started at the same moment

    def _give_up_parent(self) -> None:
        with contextlib.suppress(Exception):  # the store is failing already; the error that matters is raised
            self.client.set_terminated(self.parent_run_id, "FAILED")

    def _open_journal(self, run_id: str, run_ids: dict[Any, str]) -> None:
        if self.journal is None or not self.journal.is_open:
            journal = Journal.open(run_id)
            journal.lock()
            self.journal = journal
        self.sync = StoreSync(
            self.client, self.journal, run_id, str(self.experiment_id), run_ids=run_ids, on_idle=self._renew_lease
        )
        self.broken = None
        self.sync.notify()

    def _write_header(self, study: Study) -> None:
        self._record(
            {
                "op": "study",
                "run_id": self.parent_run_id,
                "experiment_id": self.experiment_id,
                "tracking_uri": self.tracking_uri,
                "name": study.name,
                "config": study.config.to_dict(),
                "space": study.space.to_dict(),
            }
        )

    def _renew_lease(self) -> None:
        if time.monotonic() - self._renewed_at < lease.lease_ttl() / 3:
            return
        try:
            lease.renew(self.client, self.parent_run_id)
            self._renewed_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the store is away: the lease runs out, the journal holds on
            log.debug("renewing the lease failed: %s", exc)

    def _reopen(self, study: Study, record: StudyRecord) -> None:
        self.parent_run_id, self.experiment_id = record.run_id, record.experiment_id
        self.journal = record.journal
        self._open_journal(record.run_id, dict(record.child_run_ids))
        if self.journal.header() is None:
            self._write_header(study)
        self._runs.update(record.child_run_ids)
        self._call(PARENT, "update_run", "RUNNING")
        for trial in record.interrupted:  # re-queued by the study; close their old runs
            trial.error = REQUEUED
            self._snapshot(trial)
            if trial.number in self._runs:
                self._log(trial.number, tags={"hpt.state": "failed", "hpt.error": REQUEUED, "hpt.requeued": "true"})
                self._terminate(trial.number, "KILLED")
        for trial in record.unterminated:
            tags = {"hpt.state": trial.state.value, **({"hpt.error": trial.error} if trial.error else {})}
            self._log(trial.number, tags=tags)
            self._terminate(trial.number, _RUN_STATUS[trial.state])
        for trial in record.cut_promotions:
            self._snapshot(trial)
            history = ",".join(f"{b:g}" for b in trial.budget_history)
            self._log(trial.number, tags={"hpt.state": trial.state.value, "hpt.budget_history": history})
            self._call(trial.number, "delete_tag", "hpt.error")
            self._terminate(trial.number, _RUN_STATUS[trial.state])
        for trial in study.trials:
            self._steps_logged[trial.number] = len(trial.intermediate)
            self._metrics_logged[trial.number] = dict(trial.metrics)
            if trial.state.finished and trial.params:
                self._evaluations += max(1, len(trial.budget_history))
        self._note_best(study)

    def trial_started(self, study: Study, trial: Trial) -> None:
        self._snapshot(trial)
        tags = {"hpt.state": "running", "hpt.trial": str(trial.number), "hpt.budget": str(trial.budget)}
        if trial.number in self._runs:  # a promotion continues its own run
            self._call(trial.number, "update_run", "RUNNING")
            self._log(trial.number, tags=tags)
            return
        tags["mlflow.parentRunId"] = self.parent_run_id
        self._runs.add(trial.number)
        name, start = f"trial-{trial.number:04d}", int(time.time() * 1000)
        if study.backend.needs_trial_run:  # the evaluation logs into the run itself: create it now if we can
            try:
                run = self.client.create_run(self.experiment_id, start_time=start, tags=tags, run_name=name)
                self.sync.run_ids[trial.number] = run.info.run_id
            except Exception as exc:  # noqa: BLE001 - the store is away: the run is created when it is back
                log.debug("creating the run of trial %d failed: %s", trial.number, exc)
        create = {"op": "create", "key": trial.number, "experiment_id": self.experiment_id, "name": name}
        self._record({**create, "tags": tags, "start": start})
        self._log(trial.number, params=trial.params)

    def trial_finished(self, study: Study, trial: Trial) -> None:
        self._snapshot(trial)
        new_reports = trial.intermediate[self._steps_logged.get(trial.number, 0) :]
        self._steps_logged[trial.number] = len(trial.intermediate)
        in_run = set(trial.in_run)  # what the evaluation logged into the run itself is there already
        metrics = [(k, v, s) for s, reported in new_reports for k, v in reported.items() if (s, k) not in in_run]
        step = round(trial.budget) if trial.budget else 0  # a promoted trial's results at each budget it reached
        if trial.values:
            metrics += [
                (name, v, step) for name, v in zip(objective_names(len(trial.values)), trial.values, strict=True)
            ]
        logged = self._metrics_logged.setdefault(trial.number, {})
        metrics += [(k, v, step) for k, v in trial.metrics.items() if logged.get(k) != v]
        logged.update(trial.metrics)
        tags = {
            "hpt.state": trial.state.value,
            "hpt.budget": str(trial.budget),
            "hpt.duration": f"{trial.duration:.3f}",
        }
        if trial.budget_history:
            tags["hpt.budget_history"] = ",".join(f"{b:g}" for b in trial.budget_history)
        if trial.error:
            tags["hpt.error"] = trial.error
        if trial.state is TrialState.PRUNED and trial.last_step is not None:
            tags["hpt.stopped_at"] = str(trial.last_step)
        self._log(trial.number, metrics=metrics, tags=tags)
        self._terminate(trial.number, "KILLED" if trial.error == INTERRUPTED else _RUN_STATUS[trial.state])
        if trial.error != INTERRUPTED:
            self._evaluations += 1
            self._note_best(study)

    def _note_best(self, study: Study) -> None:
        best = study.best_trial
        if best is not None:
            self._log(
                PARENT,
                metrics=[(BEST_METRIC, best.value, self._evaluations)],
                tags={EVALUATIONS_TAG: self._evaluations, "hpt.best_trial": best.number},
            )

    def _log_results(self, study: Study, status: str) -> bool:
        """Log the study's results (best trial, front, counts, plots, model); whether a model was logged."""
        best = study.best_trial
        self._elapsed += time.monotonic() - self._opened_at
        tags = {"hpt.counts": json.dumps(study.counts()), ELAPSED_TAG: f"{self._elapsed:.1f}"}
        if best is not None:
            tags.update({"hpt.best_trial": str(best.number), **{f"best.{k}": str(v) for k, v in best.params.items()}})
            self._log(PARENT, metrics=[(k, v, 0) for k, v in study.final_metrics.items()], tags=tags)
            self._log(best.number, tags={"hpt.best": "true"})
            self._call(PARENT, "log_text", json.dumps(best.params, indent=2, default=str), "best_params.json")
        else:
            self._log(PARENT, tags=tags)
        if len(study.directions) > 1:
            front = [{"trial": t.number, "values": t.values, "params": t.params} for t in study.pareto_front()]
            self._call(PARENT, "log_text", json.dumps(front, indent=2, default=str), "pareto_front.json")
        if study.config.plots and status == "FINISHED":
            plots = Path(tempfile.mkdtemp(prefix="hpt-artifacts-"))
            write_study_artifacts(study, plots)
            self._call(PARENT, "log_artifacts", str(self.journal.keep_files(plots, "plots")), "plots")
        return status == "FINISHED" and best is not None and self._log_model(study, best)

    def study_finished(self, study: Study, status: str) -> None:
        if self.sync is None:
            return  # the parent run was never created
        model_logged = False
        if self.broken is None:
            try:
                model_logged = self._log_results(study, status)
                self._terminate(PARENT, status)
            except JournalError:
                pass  # raised already where it happened; what the journal holds is still sent below
        self.unsynced = self.sync.close(0.5 if self.broken is not None else self.grace)
        if self.unsynced == 0:
            lease.release(self.client, self.parent_run_id)
        if self.unsynced == 0 and not self.sync.rejected and self.broken is None:
            self.journal.remove()
        else:
            self.journal.close()
            self.journal.unlock()
        if model_logged and self.unsynced == 0 and study.config.register_model:
            self._register_model(study.config.register_model)

    def _log_model(self, study: Study, best: Trial) -> bool:
        """The best trial's model (`Backend.save_model`, from its checkpoint) as the parent run's `model`."""
        path = Path(tempfile.mkdtemp(prefix="hpt-model-")) / MODEL_ARTIFACT
        try:
            with fetched(study._checkpoint_dir(best)) as checkpoint_dir:
                saved = study.backend.save_model(best.params, checkpoint_dir, path)
        except Exception as exc:  # the study's results stand without its model
            log.warning("saving the best trial's model failed: %s", exc)
            saved = False
        if saved:
            kept = self.journal.keep_files(path, MODEL_ARTIFACT)
            self._call(PARENT, "log_artifacts", str(kept), MODEL_ARTIFACT)
            self._log(PARENT, tags={"hpt.model": MODEL_ARTIFACT})
        shutil.rmtree(path.parent, ignore_errors=True)
        return bool(saved)

    def _register_model(self, name: str) -> None:
        """Register the parent run's `model` in the Model Registry under `name` (a new version if it exists)."""
        from mlflow.exceptions import MlflowException

        try:
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            source = f"{self.client.get_run(self.parent_run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
            version = self.client.create_model_version(name, source, run_id=self.parent_run_id)
            self.client.set_tag(self.parent_run_id, "hpt.registered_model", f"{name}/{version.version}")
        except MlflowException as exc:
            log.warning("registering the model as %r failed: %s", name, str(exc).splitlines()[0])


def write_study_artifacts(study: Study, directory: Path) -> None:
    """Let every plugin write its end-of-study files into `directory` (`hpt_study_artifacts`); a failing
    plugin is logged and skipped: the study itself is fine."""
    from hpt.plugins import registry

    directory.mkdir(parents=True, exist_ok=True)
    for impl in registry().pm.hook.hpt_study_artifacts.get_hookimpls():
        try:
            impl.function(study=study, directory=directory)
        except Exception as exc:
            log.warning("plugin %s: study artifacts failed: %s", impl.plugin_name, exc)


def acquire(run_id: str, tracking_uri: str | None = None, force: bool = False) -> tuple[MlflowClient, Journal]:
    """Take a study to run it: its journal's local lock, then its lease in the store. One line if another
    process runs it (JournalLocked on this machine, LeaseHeld elsewhere; `force` overrides the lease)."""
    client = make_client(tracking_uri)
    journal = Journal.open(run_id)
    try:
        journal.lock()
    except HptError as exc:
        raise HptError(f"{exc}; wait for it to finish, or stop that process first") from None
    try:
        with store_errors(client.tracking_uri):
            lease.claim(client, run_id, force)
    except BaseException:
        if journal.records:
            journal.close()
            journal.unlock()
        else:  # nothing of this study was journalled here (a mistyped run id): leave no trace
            journal.remove()
        raise
    return client, journal


__all__ = [
    "BEST_METRIC",
    "EXPERIMENT_KIND",
    "MODEL_ARTIFACT",
    "MlflowTracker",
    "StudyRecord",
    "acquire",
    "load_study",
    "make_client",
    "objective_names",
    "write_study_artifacts",
]
