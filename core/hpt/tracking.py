"""MLflow tracking: one parent run per study, one child run per trial.

All writes go through one writer thread in the driver, so trials never wait on the store and a
SQLite store is never written concurrently. The writer coalesces queued writes to the same run
into one `log_batch`, and is flushed at the end of a study and on Ctrl-C.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpt.backend import OBJECTIVE
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.observers import StudyObserver
from hpt.space import Space
from hpt.trial import INTERRUPTED, Trial, TrialState

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from hpt.study import Study

log = logging.getLogger(__name__)

PARENT = "parent"
BEST_METRIC = "best_objective"
CONFIG_ARTIFACT = "config.json"
SPACE_ARTIFACT = "space.json"
MODEL_ARTIFACT = "model"
"""Artifact path of the best trial's MLflow model on the parent run."""
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100
_PROBE_RETRIES = 2
_RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED", TrialState.FAILED: "FAILED"}


def objective_names(n: int) -> list[str]:
    """Metric names of the objectives: `objective`, then `objective_1`, ... for more than one."""
    return [OBJECTIVE] + [f"{OBJECTIVE}_{i}" for i in range(1, n)]


def make_client(tracking_uri: str | None = None) -> MlflowClient:
    """An MlflowClient on `tracking_uri`, MLFLOW_TRACKING_URI or MLflow's default local store, checked
    with one read so that a store that cannot be opened is one clear line (HptError), not a traceback.

    A local SQLite store is created (or migrated) under a file lock beside it: studies started at the
    same moment on a store that does not exist yet would otherwise race through MLflow's migrations.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # store creation chatter is not the user's business
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = tracking_uri or mlflow.get_tracking_uri()
    with store_errors(uri), _creation_lock(uri), _few_retries():
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    return client


@contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn what MLflow, SQLAlchemy or the file system raise about a store into one HptError line."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError, OSError) as exc:
        text = str(getattr(exc, "orig", None) or exc)
        refused = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
        if uri.startswith(("http://", "https://")) and refused:
            raise HptError(
                f"cannot reach the MLflow server {uri} ({refused.group(1).strip()}); start it or check --tracking-uri"
            ) from None
        lines = text.strip().splitlines()
        reason = lines[0][:300] if lines else type(exc).__name__
        raise HptError(f"cannot use the MLflow store {uri}: {reason}; check --tracking-uri") from None


@contextmanager
def _few_retries() -> Iterator[None]:
    """Give up on an unreachable server after a few seconds, not MLflow's minutes of retries (unless the
    user set MLFLOW_HTTP_REQUEST_MAX_RETRIES)."""
    name = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
    if name in os.environ:
        yield
        return
    os.environ[name] = str(_PROBE_RETRIES)
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store URI (None for a server, an in-memory store, ...)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on `<db>.lock` while MLflow opens (creates, migrates) a SQLite store."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    if not path.parent.is_dir():
        raise HptError(
            f"cannot use the MLflow store {uri}: directory {path.parent} does not exist; "
            "create it or pass another --tracking-uri"
        )
    try:
        lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held for the with block
    except OSError as exc:
        if not path.exists():
            raise HptError(
                f"cannot create the MLflow store {uri}: directory {path.parent} is not writable ({exc.strerror}); "
                "pass a --tracking-uri in a writable directory"
            ) from None
        yield  # an existing store in a directory we may not write to: read it as it is
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class _Batch:
    metrics: list = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class MlflowWriter:
    """A background thread that owns every write to the store.

    Runs are addressed by key (`"parent"` or a trial number); the writer maps keys to run ids, so
    callers never wait for a run to be created.
    """

    def __init__(self, client: MlflowClient) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self._Metric, self._Param, self._RunTag = Metric, Param, RunTag
        self.client = client
        self.run_ids: dict[Any, str] = {}
        self.errors: list[str] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # Called from the study's thread
    def _put(self, op: tuple) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hpt-mlflow-writer", daemon=True)
            self._thread.start()
        self._queue.put(op)

    def create(self, key: Any, experiment_id: str, run_name: str, tags: dict[str, str]) -> None:
        self._put(("create", key, (experiment_id, run_name, tags, int(time.time() * 1000))))

    def log(self, key: Any, metrics: Iterable[tuple[str, float, int]] = (), params=None, tags=None) -> None:
        now = int(time.time() * 1000)
        batch = _Batch([(k, float(v), now, int(s)) for k, v, s in metrics], dict(params or {}), dict(tags or {}))
        self._put(("log", key, batch))

    def call(self, key: Any, method: str, *args: Any) -> None:
        """Queue `client.<method>(run_id, *args)` in order with the other writes to that run."""
        self._put(("call", key, (method, args)))

    def close(self) -> None:
        """Write everything queued, then stop the thread (a later write starts a new one)."""
        if self._thread is None:
            return
        self._queue.put(("stop", None, None))
        self._thread.join()
        self._thread = None

    # The writer thread
    def _loop(self) -> None:
        while True:
            ops = [self._queue.get()]
            while True:
                try:
                    ops.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            pending: dict[Any, _Batch] = {}
            for kind, key, payload in ops:
                if kind == "log":
                    merged = pending.setdefault(key, _Batch())
                    merged.metrics += payload.metrics
                    merged.params.update(payload.params)
                    merged.tags.update(payload.tags)
                    continue
                if key in pending:
                    self._write_batch(key, pending.pop(key))
                if kind == "create":
                    self._guard(self._create, key, *payload)
                elif kind == "call":
                    self._guard(self._call, key, *payload)
                elif kind == "stop":
                    for k in list(pending):
                        self._write_batch(k, pending.pop(k))
                    return
            for k in list(pending):
                self._write_batch(k, pending.pop(k))

    def _call(self, key: Any, method: str, args: tuple) -> None:
        getattr(self.client, method)(self.run_ids[key], *args)

    def _create(self, key: Any, experiment_id: str, run_name: str, tags: dict[str, str], start: int) -> None:
        run = self.client.create_run(experiment_id, start_time=start, tags=tags, run_name=run_name)
        self.run_ids[key] = run.info.run_id

    def _write_batch(self, key: Any, batch: _Batch) -> None:
        def write() -> None:
            run_id = self.run_ids[key]
            metrics = [self._Metric(k, v, ts, s) for k, v, ts, s in batch.metrics]
            params = [self._Param(k, str(v)[:6000]) for k, v in batch.params.items()]
            tags = [self._RunTag(k, str(v)[:8000]) for k, v in batch.tags.items()]
            while metrics or params or tags:  # MLflow's per-call limits
                chunk_p, params = params[:_MAX_PARAMS], params[_MAX_PARAMS:]
                chunk_t, tags = tags[:_MAX_TAGS], tags[_MAX_TAGS:]
                room = _MAX_METRICS - len(chunk_p) - len(chunk_t)
                chunk_m, metrics = metrics[:room], metrics[room:]
                self.client.log_batch(run_id, metrics=chunk_m, params=chunk_p, tags=chunk_t)

        self._guard(write)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a store hiccup must not kill the study; it is reported at the end
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.errors.append(message)
            log.warning("MLflow write failed: %s", message)


class MlflowTracker(StudyObserver):
    """Logs a study to MLflow as the DESIGN's layout says (parent run + child run per trial)."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "hpt",
        resume: StudyRecord | None = None,
    ):
        self.client = make_client(tracking_uri)
        self.tracking_uri = self.client.tracking_uri
        self.experiment = experiment
        self.resume = resume
        self.writer = MlflowWriter(self.client)
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self._steps_logged: dict[int, int] = {}
        self._runs: set[int] = set()  # trials that have a child run (the writer creates them later)
        self._metrics_logged: dict[int, dict[str, float]] = {}

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        return exp.experiment_id if exp else self.client.create_experiment(self.experiment)

    def study_started(self, study: Study) -> None:
        if self.parent_run_id is not None:  # the same study optimised again: reopen its run
            self.writer.call(PARENT, "update_run", "RUNNING")
            return
        if self.resume is not None:
            run = self.client.get_run(self.resume.run_id)
            self.parent_run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
            self.writer.run_ids[PARENT] = self.parent_run_id
            self.writer.run_ids.update(self.resume.child_run_ids)
            self._runs.update(self.resume.child_run_ids)
            self.writer.call(PARENT, "update_run", "RUNNING")
            for trial in self.resume.interrupted:  # re-queued by the study; close their old runs
                tags = {"hpt.state": "failed", "hpt.error": trial.error, "hpt.requeued": "true"}
                self.writer.log(trial.number, tags=tags)
                self.writer.call(trial.number, "set_terminated", "KILLED")
            for trial in self.resume.unterminated:
                tags = {"hpt.state": trial.state.value, **({"hpt.error": trial.error} if trial.error else {})}
                self.writer.log(trial.number, tags=tags)
                self.writer.call(trial.number, "set_terminated", _RUN_STATUS[trial.state])
            for trial in self.resume.cut_promotions:
                history = ",".join(f"{b:g}" for b in trial.budget_history)
                self.writer.log(trial.number, tags={"hpt.state": trial.state.value, "hpt.budget_history": history})
                self.writer.call(trial.number, "delete_tag", "hpt.error")
                self.writer.call(trial.number, "set_terminated", _RUN_STATUS[trial.state])
            for trial in study.trials:
                self._steps_logged[trial.number] = len(trial.intermediate)
                self._metrics_logged[trial.number] = dict(trial.metrics)
                self._note_best(study, trial)
            return
        self.experiment_id = self._experiment_id()
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
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=study.name)
        self.parent_run_id = run.info.run_id
        self.writer.run_ids[PARENT] = self.parent_run_id
        self.writer.log(PARENT, params=study.config.to_params())
        self.writer.call(PARENT, "log_text", json.dumps(study.config.to_dict(), indent=2, default=str), CONFIG_ARTIFACT)
        self.writer.call(PARENT, "log_text", json.dumps(study.space.to_dict(), indent=2), SPACE_ARTIFACT)

    def trial_started(self, study: Study, trial: Trial) -> None:
        tags = {"hpt.state": "running", "hpt.trial": str(trial.number), "hpt.budget": str(trial.budget)}
        if trial.number in self._runs:  # a promotion continues its own run
            self.writer.call(trial.number, "update_run", "RUNNING")
            self.writer.log(trial.number, tags=tags)
            return
        tags["mlflow.parentRunId"] = self.parent_run_id
        self._runs.add(trial.number)
        if study.backend.needs_trial_run:  # the evaluation logs into the run itself: create it now
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=f"trial-{trial.number:04d}")
            self.writer.run_ids[trial.number] = run.info.run_id
        else:
            self.writer.create(trial.number, self.experiment_id, f"trial-{trial.number:04d}", tags)
        self.writer.log(trial.number, params=trial.params)

    def trial_run_id(self, number: int) -> str | None:
        """The MLflow run of trial `number`, once it exists (at once for a backend that `needs_trial_run`)."""
        return self.writer.run_ids.get(number)

    def trial_finished(self, study: Study, trial: Trial) -> None:
        new_reports = trial.intermediate[self._steps_logged.get(trial.number, 0) :]
        self._steps_logged[trial.number] = len(trial.intermediate)
        metrics = [(k, v, step) for step, reported in new_reports for k, v in reported.items()]
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
        self.writer.log(trial.number, metrics=metrics, tags=tags)
        status = "KILLED" if trial.error == INTERRUPTED else _RUN_STATUS[trial.state]
        self.writer.call(trial.number, "set_terminated", status)
        self._note_best(study, trial)

    def _note_best(self, study: Study, trial: Trial) -> None:
        best = study.best_trial
        if best is not None and trial.state.finished:
            self.writer.log(PARENT, metrics=[(BEST_METRIC, best.value, trial.number)])

    def study_finished(self, study: Study, status: str) -> None:
        best = study.best_trial
        if best is not None:
            tags = {"hpt.best_trial": str(best.number), **{f"best.{k}": str(v) for k, v in best.params.items()}}
            self.writer.log(PARENT, metrics=[(k, v, 0) for k, v in study.final_metrics.items()], tags=tags)
            self.writer.log(best.number, tags={"hpt.best": "true"})
            self.writer.call(PARENT, "log_text", json.dumps(best.params, indent=2, default=str), "best_params.json")
        if len(study.directions) > 1:
            front = [{"trial": t.number, "values": t.values, "params": t.params} for t in study.pareto_front()]
            self.writer.call(PARENT, "log_text", json.dumps(front, indent=2, default=str), "pareto_front.json")
        self.writer.log(PARENT, tags={"hpt.counts": json.dumps(study.counts())})
        artifacts = Path(tempfile.mkdtemp(prefix="hpt-artifacts-"))
        if study.config.plots:
            self._log_study_artifacts(study, artifacts)
        model = Path(tempfile.mkdtemp(prefix="hpt-model-")) / MODEL_ARTIFACT
        logged = status == "FINISHED" and best is not None and self._log_model(study, best, model)
        self.writer.call(PARENT, "set_terminated", status)
        self.writer.close()
        if logged and study.config.register_model:
            self._register_model(study.config.register_model)
        shutil.rmtree(artifacts, ignore_errors=True)
        shutil.rmtree(model.parent, ignore_errors=True)
        if self.writer.errors:
            log.warning("%d MLflow writes failed; first: %s", len(self.writer.errors), self.writer.errors[0])

    def _log_model(self, study: Study, best: Trial, path: Path) -> bool:
        """The best trial's model (`Backend.save_model`, from its checkpoint) as the parent run's `model`."""
        try:
            saved = study.backend.save_model(best.params, study._checkpoint_dir(best), path)
        except Exception as exc:  # the study's results stand without its model
            log.warning("saving the best trial's model failed: %s", exc)
            return False
        if saved:
            self.writer.call(PARENT, "log_artifacts", str(path), MODEL_ARTIFACT)
            self.writer.log(PARENT, tags={"hpt.model": MODEL_ARTIFACT})
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
            self.writer.errors.append(f"registering model {name!r}: {str(exc).splitlines()[0]}")
            log.warning("registering the model as %r failed: %s", name, str(exc).splitlines()[0])

    def _log_study_artifacts(self, study: Study, directory: Path) -> None:
        """What plugins write at the end of a study (plots, reports), as artifacts of its parent run."""
        write_study_artifacts(study, directory)
        self.writer.call(PARENT, "log_artifacts", str(directory))


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


@dataclass
class StudyRecord:
    """What MLflow holds about a study: its config, space and trials (enough to resume it)."""

    run_id: str
    config: StudyConfig
    space: Space
    trials: list[Trial]
    interrupted: list[Trial]
    child_run_ids: dict[int, str]
    unterminated: list[Trial]
    """Finished trials whose run status never reached the store (the process died in between)."""
    cut_promotions: list[Trial]
    """Trials whose promotion to a larger budget was interrupted: restored at the budget they finished."""


def load_study(run_id: str, tracking_uri: str | None = None) -> StudyRecord:
    """Rebuild a study's config and trials from its MLflow runs alone."""
    from mlflow.exceptions import MlflowException

    client = make_client(tracking_uri)
    try:
        parent = client.get_run(run_id)
        config = StudyConfig.from_dict(json.loads(_read_text(client, run_id, CONFIG_ARTIFACT)))
        space = Space.from_dict(json.loads(_read_text(client, run_id, SPACE_ARTIFACT)))
    except MlflowException as exc:
        raise HptError(f"cannot load study {run_id!r} from {client.tracking_uri}: {str(exc).splitlines()[0]}") from None
    n_objectives = len(config.directions or ["minimize"])
    names = objective_names(n_objectives)
    runs, token = [], None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            break
    finished, interrupted, unterminated, cut_promotions, run_ids = [], [], [], [], {}
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        number = int(tags["hpt.trial"])
        run_ids[number] = run.info.run_id
        budget = tags.get("hpt.budget")
        history = tags.get("hpt.budget_history")
        state_text = tags.get("hpt.state", "running")
        try:
            params = space.parse(run.data.params)
        except HptError:  # killed between creating the run and logging its params: nothing to re-run
            params, state_text = {}, "failed"
            tags = {**tags, "hpt.error": "interrupted before its parameters were recorded", "hpt.requeued": "true"}
        trial = Trial(
            number,
            params,
            budget=None if budget in (None, "None") else float(budget),
            state=TrialState(state_text) if state_text != "running" else TrialState.FAILED,
            values=[metrics[n] for n in names] if all(n in metrics for n in names) else None,
            metrics={k: v for k, v in metrics.items() if k not in names},
            budget_history=[float(b) for b in history.split(",")] if history else [],
            duration=float(tags.get("hpt.duration", 0.0)),
            error=tags.get("hpt.error"),
        )
        was_interrupted = state_text == "running" or trial.error == INTERRUPTED
        if was_interrupted and len(trial.budget_history) > 1:  # a promotion cut short: back to its last rung
            trial.budget_history.pop()
            trial.budget, trial.error = trial.budget_history[-1], None
            trial.state = TrialState.COMPLETE if trial.values else TrialState.FAILED
            cut_promotions.append(trial)
        elif was_interrupted and tags.get("hpt.requeued") != "true":
            trial.error = INTERRUPTED
            interrupted.append(trial)
        elif not was_interrupted and run.info.status == "RUNNING":
            unterminated.append(trial)
        finished.append(trial)
    finished.sort(key=lambda t: t.number)
    return StudyRecord(run_id, config, space, finished, interrupted, run_ids, unterminated, cut_promotions)


def _read_text(client: MlflowClient, run_id: str, path: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text()
