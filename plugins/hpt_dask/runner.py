"""The `dask` executor: trials run on dask.distributed workers; the study loop and the MLflow
writes stay in the driver.

`DaskRunner(workers, scheduler="tcp://HOST:PORT")` connects to an existing cluster; without
`scheduler` it starts a `LocalCluster` of `workers` single-threaded worker processes (in the
background, while the study's backend is built) and shuts it down on `close()` (the study closes
its runner after each `optimize`; a later `submit` starts it again).

The backend travels once per worker, as a worker plugin: the scheduler hands it to every worker,
including workers that join or restart later, and a trial carries only its parameters.
A trial whose worker dies fails with the reason, and so does a trial that runs past its
timeout (its worker is restarted to stop it); the study goes on. On a LocalCluster a trial fails
when its first worker dies; an existing cluster follows its scheduler's
`distributed.scheduler.allowed-failures` (dask re-runs the task on another worker that many times).
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError, wait
from dataclasses import dataclass, field
from typing import Any

import dask
import distributed.utils
from distributed import Client, LocalCluster, get_worker
from distributed import Future as DaskFuture
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.scheduler import KilledWorker
from hpt.backend import Backend
from hpt.errors import HptError
from hpt.evaluation import TrialOutcome, TrialTask, evaluate_trial
from hpt.executors import Runner, limit_threads, worker_context
from hpt.trial import TrialState

CONNECT_TIMEOUT = "30s"
"""How long to wait for the scheduler, and for a first worker when `workers` is not given."""


class BackendPlugin(WorkerPlugin):
    """Holds the study's backend on each worker and gives trials one thread each (dask runs one
    task per worker thread, so more would oversubscribe the cores)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def setup(self, worker) -> None:
        limit_threads(1)


def evaluate_on_worker(plugin_name: str, task: TrialTask) -> TrialOutcome:
    """The task a trial runs as: evaluate it with the backend this worker already holds."""
    plugin = get_worker().plugins.get(plugin_name)
    if not isinstance(plugin, BackendPlugin):
        raise HptError(f"this dask worker has no backend {plugin_name!r}; its plugin setup failed (see worker log)")
    return evaluate_trial(plugin.backend, task)


class DaskRunner(Runner):
    """Runs trials on a dask.distributed cluster: `scheduler` names one, otherwise a LocalCluster
    of `workers` processes is started. `workers` is how many trials are in flight; with a
    `scheduler` and no `workers` it is the cluster's worker threads.

    Options:
        scheduler: address of a running dask scheduler (tcp://HOST:PORT); without it a LocalCluster starts.
    """

    name = "dask"

    def __init__(
        self, workers: int | None = None, *, preload: Sequence[str] = (), scheduler: str | None = None
    ) -> None:
        super().__init__(workers or os.cpu_count() or 1, preload=preload)
        self.scheduler = scheduler
        self.client: Client | None = None
        self._cluster: Future[LocalCluster] | None = None
        self._plugin_name = f"hpt-backend-{uuid.uuid4().hex[:12]}"
        self._pending: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._expiring = threading.Lock()
        self._keys = itertools.count()
        if scheduler:
            self.client = _connect(scheduler)
            if workers is None:
                self.workers = _cluster_threads(self.client, scheduler)
        else:
            self._start_cluster()

    def _start_cluster(self) -> None:
        """Start the LocalCluster in the background: it comes up while the backend loads its data."""
        worker_context(("distributed", "hpt.evaluation", __name__, *self.preload))
        self._cluster = Future()
        threading.Thread(target=_resolve, args=(self._cluster, _local_cluster, self.workers), daemon=True).start()

    def start(self, backend: Backend) -> None:
        super().start(backend)
        self._connect()

    def _connect(self) -> None:
        """Reach the cluster (waiting for the local one to be up) and put the backend on its workers."""
        if self.client is None:
            if self._cluster is None:
                self._start_cluster()
            self.client = Client(self._cluster.result(), set_as_default=False)
        self.client.register_plugin(BackendPlugin(self.backend), name=self._plugin_name)

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        if self.client is None:
            if self.scheduler:
                self.client = _connect(self.scheduler)
            self._connect()
        key = f"hpt-trial-{task.number:04d}-{self._plugin_name[-12:]}-{next(self._keys)}"
        flight = _Flight(self.client.submit(evaluate_on_worker, self._plugin_name, task, key=key, pure=False))
        with self._lock:
            self._pending[key] = flight
        if task.timeout:
            flight.timer = threading.Timer(task.timeout, self._expire, (flight, task.timeout))
            flight.timer.daemon = True
            flight.timer.start()

        def relay(done: DaskFuture) -> None:
            with self._lock:
                self._pending.pop(done.key, None)
            if flight.timer is not None:
                flight.timer.cancel()
            try:
                outcome = _outcome(done)
            except Exception as exc:  # never leave the study waiting on a future nobody will set
                outcome = _failed(f"result could not be fetched from the dask cluster ({exc!r})")
            _settle(flight.outer, outcome)

        flight.inner.add_done_callback(relay)
        return flight.outer

    def _expire(self, flight: _Flight, timeout: float) -> None:
        """Fail a trial that ran past its timeout and restart its worker: a thread cannot be stopped."""
        with self._expiring:
            if self.client is None or not _settle(flight.outer, _failed(f"timed out after {timeout:g} s", timeout)):
                return
            running_on = [w for w, keys in self.client.processing().items() if flight.inner.key in keys]
            self.client.cancel([flight.inner], reason="trial timed out")
            if running_on:
                self.client.restart_workers(running_on, raise_for_error=False)

    def close(self, cancel: bool = False) -> None:
        """Cancel (or wait for) trials still on the cluster, take the backend off the workers and
        disconnect; a LocalCluster this runner started is shut down. A later `submit` reconnects."""
        if self.client is None:
            if self._cluster is not None:  # closed before the study started: the cluster may still be starting
                self._cluster.add_done_callback(lambda done: done.exception() or done.result().close())
                self._cluster = None
            return
        with self._lock:
            flights = list(self._pending.values())
        for flight in flights:
            if flight.timer is not None:
                flight.timer.cancel()
        with self._expiring:  # let a timeout that already fired finish restarting its worker
            try:
                if cancel:
                    self.client.cancel([f.inner for f in flights], reason="study stopped")
                    for flight in flights:
                        _settle(flight.outer, _failed("cancelled when the study stopped"))
                else:
                    wait([f.outer for f in flights])
                if self._cluster is None:
                    self.client.unregister_worker_plugin(self._plugin_name)
            finally:
                self.client.close()
                if self._cluster is not None:
                    self._cluster.result().close()
                self.client, self._cluster = None, None


@dataclass
class _Flight:
    """A trial on the cluster: the dask future, the future the study waits on, its timeout timer."""

    inner: DaskFuture
    outer: Future[TrialOutcome] = field(default_factory=Future)
    timer: threading.Timer | None = None

    def __post_init__(self) -> None:
        self.outer.set_running_or_notify_cancel()


def _cluster_threads(client: Client, scheduler: str) -> int:
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        client.close()
        raise HptError(
            f"no dask worker joined the scheduler at {scheduler!r} within {CONNECT_TIMEOUT}; "
            f"start one with `dask worker {scheduler}` or pass --workers N"
        ) from None
    return sum(client.nthreads().values())


def _connect(scheduler: str) -> Client:
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise HptError(
            f"cannot connect to the dask scheduler at {scheduler!r} ({exc}); "
            "check --scheduler or start one with `dask scheduler`"
        ) from None


def _local_cluster(workers: int) -> LocalCluster:
    """Single-threaded worker processes forked from the fork server `worker_context` started (it
    imports distributed and the backend's modules once, instead of each worker after a spawn)."""
    config = {
        # A worker that dies fails its trial at once instead of dask re-running it on another worker:
        # a trial that kills its worker (out of memory, a crash in native code) would do it again.
        "distributed.scheduler.allowed-failures": 0,
        "distributed.worker.multiprocessing-method": "forkserver",
        # Housekeeping for a dashboard nobody reads here: the statistical profiler samples each
        # worker's stack every 10 ms, the event loops check their own latency every 20 ms and sample
        # CPU and memory every 0.5 s, each time taking the GIL (and a core) from the training loops
        "distributed.worker.profile.enabled": False,
        "distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "5s",
    }
    # distributed would otherwise import every optional package it knows (pandas, ...) into this
    # process to preload them on a fork server it starts; the server is already running with ours
    distributed.utils._forkserver_preload_set = True
    with dask.config.set(config):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def _resolve(future: Future, fn: Callable[..., Any], *args: Any) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # the waiting side re-raises it
        future.set_exception(exc)


def _failed(reason: str, duration: float = 0.0) -> TrialOutcome:
    return TrialOutcome(TrialState.FAILED, error=reason, duration=duration)


def _settle(future: Future[TrialOutcome], outcome: TrialOutcome) -> bool:
    """Set the outcome unless the trial already has one (a timeout and a result can race)."""
    try:
        future.set_result(outcome)
    except InvalidStateError:  # the other side won
        return False
    return True


def _outcome(done: DaskFuture) -> TrialOutcome:
    """The trial's outcome, or a failed one saying why the cluster could not run it."""
    if done.status == "finished":
        return done.result()
    if done.status == "cancelled":
        return _failed(f"cancelled on the dask cluster: {_cancel_reason(done)}")
    exc = done.exception()
    if isinstance(exc, KilledWorker):
        worker = getattr(exc.last_worker, "address", exc.last_worker)
        return _failed(f"dask worker {worker} died while running the trial")
    return _failed(f"the dask worker could not run the trial: {type(exc).__name__}: {exc}")


def _cancel_reason(done: DaskFuture) -> str:
    try:
        done.result()
    except BaseException as exc:  # FutureCancelledError carries the scheduler's reason
        return str(exc).splitlines()[0]
    return "no reason given"
