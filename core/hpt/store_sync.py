"""Bring a study's MLflow runs up to date with its journal, in one background thread.

Records are applied in journal order. Consecutive writes to one run are merged into one `log_batch`.
A store that does not answer (a server down, a locked or full database) is retried with back-off for as
long as the study runs, and for a grace period at its end; nothing is dropped. Every write is idempotent
when sent again (MLflow ignores a metric point, a param or a tag it already holds), except creating a
run: after a failure, a run is looked up by its trial number before it is created, so a lost answer to
a create that did reach the store never makes a trial appear twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpt.journal import Journal

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

PARENT = "parent"
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100
_CHUNK = 500
"""Records applied before the journal's synced mark moves on."""
_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
_CLOSING_BACKOFF = 2.0
REJECTED = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "BAD_REQUEST"}
"""MLflow error codes that no retry can fix (a param logged again with another value): such a write is
reported and skipped, piece by piece, so the rest of its batch still lands."""


@dataclass
class _Batch:
    metrics: list = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class StoreSync:
    """Sends a journal's records to the store. `start()` runs it in a thread; `run_once()` in the caller's."""

    def __init__(
        self,
        client: MlflowClient,
        journal: Journal,
        parent_run_id: str,
        experiment_id: str,
        run_ids: dict[Any, str] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self._Metric, self._Param, self._RunTag = Metric, Param, RunTag
        self.client = client
        self.journal = journal
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        self.run_ids: dict[Any, str] = {PARENT: parent_run_id, **(run_ids or {})}
        self.rejected: list[str] = []
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._next = journal.synced()
        self._verify_creates = self._next < len(journal.records)  # replaying: some creates may have landed
        self._on_idle = on_idle
        self._wake = threading.Condition()
        self._closing: float | None = None
        self._thread: threading.Thread | None = None

    # What the study asks
    def pending(self) -> int:
        return len(self.journal.records) - self._next

    def waiting_trials(self) -> int:
        """Trials with writes the store does not hold yet."""
        return len({r["key"] for r in self.journal.records[self._next :] if isinstance(r.get("key"), int)})

    def notify(self) -> None:
        """New records are in the journal."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hpt-store-sync", daemon=True)
            self._thread.start()
        with self._wake:
            self._wake.notify()

    def close(self, grace: float) -> int:
        """Send what is left, retrying for up to `grace` seconds while the store is away; stop the thread.
        Returns how many records the store still lacks (0: it holds everything)."""
        if self._thread is None:
            return self.pending()
        with self._wake:
            self._closing = time.monotonic() + grace
            self._wake.notify()
        self._thread.join(grace + 60.0)  # a write in flight may run into the HTTP timeout once
        self._thread = None
        return self.pending()

    # The thread
    def _loop(self) -> None:
        failures = 0
        while True:
            with self._wake:
                while self.pending() == 0 and self._closing is None:
                    if self._on_idle is not None:
                        self._wake.release()
                        try:
                            self._on_idle()
                        finally:
                            self._wake.acquire()
                    self._wake.wait(timeout=5.0)
            if self.pending() == 0:
                return  # closing, and nothing left
            if self.run_once():
                failures = 0
                continue
            failures += 1
            if self._closing is not None and time.monotonic() >= self._closing:
                return
            delay = _BACKOFF[min(failures - 1, len(_BACKOFF) - 1)]
            if self._closing is not None:
                delay = min(delay, _CLOSING_BACKOFF, max(0.0, self._closing - time.monotonic()))
            with self._wake:
                self._wake.wait(timeout=delay)

    def run_once(self) -> bool:
        """Apply the next chunk of pending records; False if the store did not take them (try again later)."""
        end = min(len(self.journal.records), self._next + _CHUNK)
        try:
            self._apply(self.journal.records[self._next : end])
        except Exception as exc:  # the store is away or failing: keep the records, retry later
            self.last_error = _first_line(exc)
            if self.failing_since is None:
                self.failing_since = time.time()
                log.warning(
                    "tracking store unreachable since %s (%s); the study goes on, its writes wait in %s",
                    time.strftime("%H:%M:%S"),
                    self.last_error,
                    self.journal.directory,
                )
            self._verify_creates = True
            return False
        sent = end - self._next
        self._next = end
        self.journal.mark_synced(end)
        if self.failing_since is not None:
            log.warning("tracking store reachable again; %d waiting writes sent", sent + self.pending())
        self.failing_since = None
        return True

    # Applying records
    def _apply(self, records: list[dict[str, Any]]) -> None:
        pending: dict[Any, _Batch] = {}
        for record in records:
            op, key = record.get("op"), record.get("key")
            if op == "log":
                merged = pending.setdefault(key, _Batch())
                merged.metrics += record.get("metrics", [])
                merged.params.update(record.get("params", {}))
                merged.tags.update(record.get("tags", {}))
                continue
            if op not in ("create", "call"):
                continue  # study headers and trial snapshots are for resume, not for the store
            if key in pending:
                self._write_batch(key, pending.pop(key))
            if op == "create":
                self._create(key, record)
            else:
                self._call(key, record["method"], record.get("args", []))
        for key in list(pending):
            self._write_batch(key, pending.pop(key))

    def _run_id(self, key: Any) -> str:
        if key not in self.run_ids:
            found = self._find_trial_run(key)
            if found is None:
                raise _Rejected(f"no run for trial {key} in the store")
            self.run_ids[key] = found
        return self.run_ids[key]

    def _find_trial_run(self, number: Any) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.mlflow.parentRunId = '{self.parent_run_id}' and tags.`hpt.trial` = '{number}'",
            max_results=10,
        )
        return runs[0].info.run_id if runs else None

    def _create(self, key: Any, record: dict[str, Any]) -> None:
        if key in self.run_ids:
            return
        if self._verify_creates:
            found = self._find_trial_run(key)
            if found is not None:
                self.run_ids[key] = found
                return
        run = self.client.create_run(
            record["experiment_id"], start_time=record.get("start"), tags=record["tags"], run_name=record["name"]
        )
        self.run_ids[key] = run.info.run_id

    def _call(self, key: Any, method: str, args: list[Any]) -> None:
        try:
            self._guarded(getattr(self.client, method), self._run_id(key), *args, missing_ok=method == "delete_tag")
        except _Rejected as exc:
            self._reject(f"{method} on {key}: {exc}")

    def _write_batch(self, key: Any, batch: _Batch) -> None:
        try:
            run_id = self._run_id(key)
        except _Rejected as exc:
            self._reject(str(exc))
            return
        metrics = [self._Metric(k, v, ts, s) for k, v, ts, s in batch.metrics]
        params = [self._Param(k, str(v)[:6000]) for k, v in batch.params.items()]
        tags = [self._RunTag(k, str(v)[:8000]) for k, v in batch.tags.items()]
        while metrics or params or tags:  # MLflow's per-call limits
            chunk_p, params = params[:_MAX_PARAMS], params[_MAX_PARAMS:]
            chunk_t, tags = tags[:_MAX_TAGS], tags[_MAX_TAGS:]
            room = _MAX_METRICS - len(chunk_p) - len(chunk_t)
            chunk_m, metrics = metrics[:room], metrics[room:]
            try:
                self._guarded(self.client.log_batch, run_id, metrics=chunk_m, params=chunk_p, tags=chunk_t)
            except _Rejected:  # one bad piece must not sink the others: send them one kind at a time
                for kind, part in (("metrics", chunk_m), ("params", chunk_p), ("tags", chunk_t)):
                    if part:
                        try:
                            self._guarded(self.client.log_batch, run_id, **{kind: part})
                        except _Rejected as exc:
                            self._reject(f"{kind} of {key}: {exc}")

    def _guarded(self, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """Call the store; an error no retry can fix becomes `_Rejected`, anything else propagates (retry).
        `missing_ok`: a thing that is not there is already as wanted (deleting a tag the run lacks)."""
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            if missing_ok and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            if exc.error_code in REJECTED:
                raise _Rejected(_first_line(exc)) from None
            raise

    def _reject(self, message: str) -> None:
        self.rejected.append(message)
        log.warning("the tracking store refused a write: %s", message)


class _Rejected(Exception):
    """A write the store refuses for good."""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"


def replay(client: MlflowClient, journal: Journal, grace: float = 0.0) -> StoreSync:
    """Send everything a journal holds that its store lacks, in this thread (what `hpt sync` does)."""
    header = journal.header() or {}
    sync = StoreSync(client, journal, journal.run_id, str(header.get("experiment_id", "")))
    deadline = time.monotonic() + grace
    failures = 0
    while sync.pending():
        if sync.run_once():
            failures = 0
            continue
        failures += 1
        if time.monotonic() >= deadline:
            break
        time.sleep(min(_BACKOFF[min(failures - 1, len(_BACKOFF) - 1)], max(0.0, deadline - time.monotonic())))
    return sync


__all__ = ["PARENT", "StoreSync", "replay"]
