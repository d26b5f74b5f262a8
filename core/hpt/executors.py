"""Runners: where trials execute. The study loop submits `TrialTask`s and waits on futures;
it does not care whether they run in-process, in local processes or on a dask cluster.

The core keeps the interface, the in-process `SerialRunner` (what a study with one worker uses) and
what runner plugins share (`worker_context`, `limit_threads`); the local process pool is the `process`
executor of the built-in `hpt_basic` plugin, the dask one lives in `hpt_dask`.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future

from hpt.backend import Backend
from hpt.evaluation import TrialOutcome, TrialTask, evaluate_trial
from hpt.trial import TrialState


class Runner(ABC):
    """Submits trials somewhere and hands back futures of `TrialOutcome`.

    Built before the backend: `__init__` may start what needs no backend yet (worker processes
    importing the `preload` modules, a cluster), so that start-up overlaps the backend's own set-up
    (loading a dataset); `start(backend)` then hands the backend over, before the first `submit`."""

    name = ""

    def __init__(self, workers: int | None = 1, *, preload: Sequence[str] = ()) -> None:
        self.workers = max(1, int(workers or 1))
        self.preload = tuple(preload)
        self.backend: Backend | None = None

    def start(self, backend: Backend) -> None:
        """Take the study's backend; runners with workers ship it to each of them once."""
        self.backend = backend

    @abstractmethod
    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        """Start `task` (or queue it until a worker is free) and return the future of its outcome."""

    def close(self, cancel: bool = False) -> None:  # noqa: B027 - optional: a runner without workers has none
        """Release workers; with `cancel`, stop trials that are queued or running."""


def failed_outcome(error: str, started: float | None = None) -> TrialOutcome:
    """The outcome of a trial that could not finish (a dead worker, a timeout), timed from `started`."""
    return TrialOutcome(TrialState.FAILED, error=error, duration=time.monotonic() - started if started else 0.0)


class _TrialTimeout(BaseException):  # noqa: N818 - not an Exception, so an objective's `except Exception` cannot swallow it
    """Raised by the alarm inside a trial that ran past its timeout."""


class SerialRunner(Runner):
    """Runs each trial in the calling process, at submit time. The default for one worker.

    A trial timeout is enforced with SIGALRM when running in the main thread. The `hpt_basic` plugin
    registers it as the `serial` executor, for choosing it by name."""

    def __init__(self, workers: int | None = 1, *, preload: Sequence[str] = ()) -> None:
        super().__init__(1, preload=preload)

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        future: Future[TrialOutcome] = Future()
        alarm = task.timeout and threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")
        if not alarm:
            future.set_result(evaluate_trial(self.backend, task))
            return future

        def expire(signum: int, frame: object) -> None:
            raise _TrialTimeout

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, task.timeout)
        started = time.monotonic()
        try:
            outcome = evaluate_trial(self.backend, task)
        except _TrialTimeout:
            outcome = failed_outcome(f"timed out after {task.timeout:g} s", started)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        future.set_result(outcome)
        return future


def worker_context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """Where worker processes come from: a fork server that imports `preload` once (torch, the backend's
    module) and forks every worker from that state, so workers start in milliseconds. The server starts
    now, in the background, and is shared by every runner of this process (the first one's `preload`
    is what it imports). Without fork servers (not POSIX), workers are spawned and import on their own."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(dict.fromkeys(preload)))
    multiprocessing.forkserver.ensure_running()
    return context


def limit_threads(threads: int) -> None:
    """Give this worker process its share of the cores so N workers do not fight over them."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
