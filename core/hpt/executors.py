"""Runners: where trials execute. The study loop submits `TrialTask`s and waits on futures;
it does not care whether they run in-process, in local processes or on a dask cluster.

The backend is shipped to each worker once (as the pool's initializer argument) rather than
with every trial, so a backend holding a dataset is not pickled per trial.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from hpt.backend import Backend
from hpt.evaluation import TrialOutcome, TrialTask, evaluate_trial
from hpt.trial import TrialState


class Runner:
    """Submits trials somewhere and hands back futures of `TrialOutcome`."""

    name = ""

    def __init__(self, backend: Backend, workers: int = 1) -> None:
        self.backend = backend
        self.workers = max(1, int(workers))

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        """Release workers; with `cancel`, drop trials that have not started."""


class SerialRunner(Runner):
    """Runs each trial in the calling process, at submit time. The default for one worker."""

    name = "serial"

    def __init__(self, backend: Backend, workers: int = 1) -> None:
        super().__init__(backend, 1)

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        future: Future[TrialOutcome] = Future()
        future.set_result(evaluate_trial(self.backend, task))
        return future


def limit_threads(threads: int) -> None:
    """Give this worker process its share of the cores so N workers do not fight over them."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


_worker_backend: Backend | None = None


def _init_worker(backend: Backend, threads: int) -> None:
    global _worker_backend
    limit_threads(threads)
    _worker_backend = backend


def _run_in_worker(task: TrialTask) -> TrialOutcome:
    assert _worker_backend is not None, "worker was not initialised"
    return evaluate_trial(_worker_backend, task)


class ProcessRunner(Runner):
    """Runs trials in a pool of local processes. A worker that dies fails its trial and the
    pool is rebuilt, so the study goes on."""

    name = "process"

    def __init__(self, backend: Backend, workers: int = 2) -> None:
        super().__init__(backend, workers)
        self._threads = max(1, (os.cpu_count() or 1) // self.workers)
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self._context = multiprocessing.get_context(method)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, mp_context=self._context, initializer=_init_worker, initargs=(self.backend, self._threads)
        )

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        try:
            inner = self._pool.submit(_run_in_worker, task)
        except BrokenProcessPool:
            self._pool = self._new_pool()
            inner = self._pool.submit(_run_in_worker, task)
        outer: Future[TrialOutcome] = Future()

        def relay(done: Future[TrialOutcome]) -> None:
            if done.cancelled():
                outer.cancel()
                outer.set_running_or_notify_cancel()
                return
            exc = done.exception()
            if exc is None:
                outer.set_result(done.result())
            else:
                reason = "worker process died" if isinstance(exc, BrokenProcessPool) else repr(exc)
                outer.set_result(TrialOutcome(TrialState.FAILED, error=f"{reason} while running the trial"))

        inner.add_done_callback(relay)
        return outer

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
