"""Runners: where trials execute. The study loop submits `TrialTask`s and waits on futures;
it does not care whether they run in-process, in local processes or on a dask cluster.

The process runner keeps one pipe per worker process instead of using
`concurrent.futures.ProcessPoolExecutor`: a pool cannot kill the one worker whose trial ran past
its timeout, and a pool whose worker dies fails every trial in flight. Here a dead or killed
worker fails only its own trial and is replaced; the backend is shipped to each worker once, when
the worker starts, not with every trial.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait

from hpt.backend import Backend
from hpt.evaluation import TrialOutcome, TrialTask, evaluate_trial
from hpt.trial import TrialState


class Runner:
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

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        """Release workers; with `cancel`, stop trials that are queued or running."""


def _failed(error: str, started: float | None = None) -> TrialOutcome:
    return TrialOutcome(TrialState.FAILED, error=error, duration=time.monotonic() - started if started else 0.0)


class _TrialTimeout(BaseException):  # noqa: N818 - not an Exception, so an objective's `except Exception` cannot swallow it
    """Raised by the alarm inside a trial that ran past its timeout."""


class SerialRunner(Runner):
    """Runs each trial in the calling process, at submit time. The default for one worker.

    A trial timeout is enforced with SIGALRM when running in the main thread."""

    name = "serial"

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
            outcome = _failed(f"timed out after {task.timeout:g} s", started)
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


_STARTED = "started"


def _worker_main(conn: Connection, backend: Backend, threads: int) -> None:
    """A worker process: evaluate tasks from the pipe until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    limit_threads(threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(_STARTED)  # the trial's clock starts now, not while the worker was still starting up
        conn.send(evaluate_trial(backend, task))


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext, backend: Backend, threads: int) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, backend, threads), daemon=True)
        self.process.start()
        child.close()
        self.task: TrialTask | None = None
        self.future: Future[TrialOutcome] | None = None
        self.started: float | None = None

    def give(self, task: TrialTask, future: Future[TrialOutcome]) -> None:
        self.task, self.future, self.started = task, future, None
        self.conn.send(task)

    def release(self) -> Future[TrialOutcome]:
        future, self.task, self.future, self.started = self.future, None, None, None
        return future

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class ProcessRunner(Runner):
    """Runs trials in `workers` local processes, each limited to its share of the cores."""

    name = "process"

    def __init__(self, workers: int | None = 2, *, preload: Sequence[str] = ()) -> None:
        super().__init__(workers or 2, preload=preload)
        self._threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._context = worker_context(("hpt.evaluation", *self.preload))
        self._lock = threading.Lock()
        self._queue: deque[tuple[TrialTask, Future[TrialOutcome]]] = deque()
        self._wake_read, self._wake_write = self._context.Pipe(duplex=False)
        self._workers: list[_Worker] = []
        self._closing = False
        self._collector: threading.Thread | None = None

    def _start(self) -> None:
        """Start the workers on first use (and again after `close`)."""
        self._closing = False
        self._workers = [_Worker(self._context, self.backend, self._threads) for _ in range(self.workers)]
        self._collector = threading.Thread(target=self._collect, name="hpt-process-runner", daemon=True)
        self._collector.start()

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        future: Future[TrialOutcome] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if not self._workers:
                self._start()
            self._queue.append((task, future))
            self._dispatch()
        self._wake_write.send(b"")
        return future

    def _dispatch(self) -> None:
        for i, worker in enumerate(self._workers):
            if not self._queue:
                return
            if worker.future is not None:
                continue
            task, future = self._queue.popleft()
            try:
                worker.give(task, future)
            except (BrokenPipeError, OSError):  # died while idle: replace it and retry
                worker.kill()
                self._workers[i] = worker = _Worker(self._context, self.backend, self._threads)
                worker.give(task, future)

    def _collect(self) -> None:
        while not self._closing:
            with self._lock:
                busy = {w.conn: w for w in self._workers if w.future is not None}
                deadlines = [w.started + w.task.timeout for w in busy.values() if w.task.timeout and w.started]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = wait([*busy, self._wake_read], timeout=timeout)
            if self._wake_read in ready:
                while self._wake_read.poll():
                    self._wake_read.recv_bytes()
            with self._lock:
                for conn in ready:
                    if conn in busy:
                        self._receive(busy[conn])
                self._expire_timeouts()
                self._dispatch()

    def _receive(self, worker: _Worker) -> None:
        try:
            outcome = worker.conn.recv()
            if outcome == _STARTED:
                worker.started = time.monotonic()
                return
        except (EOFError, OSError):
            worker.process.join(timeout=5)
            code = worker.process.exitcode
            reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            outcome = _failed(f"worker process died ({reason}) while running the trial", worker.started)
            self._replace(worker)
        worker.release().set_result(outcome)

    def _expire_timeouts(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.started and worker.task.timeout and now - worker.started >= worker.task.timeout:
                timeout = worker.task.timeout
                future = worker.release()
                self._replace(worker)
                future.set_result(_failed(f"timed out after {timeout:g} s", now - timeout))

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self._context, self.backend, self._threads)

    def close(self, cancel: bool = False) -> None:
        if not self._workers:
            return
        with self._lock:
            self._closing = True
            for _, future in self._queue:
                future.set_result(_failed("cancelled before it started"))
            self._queue.clear()
        self._wake_write.send(b"")
        self._collector.join(timeout=10)
        for worker in self._workers:
            if worker.future is not None:
                outcome = _failed("cancelled while running", worker.started) if cancel else self._finish_one(worker)
                worker.release().set_result(outcome)
            if cancel:
                worker.kill()
                continue
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.kill()
        self._workers = []

    def _finish_one(self, worker: _Worker) -> TrialOutcome:
        try:
            outcome = worker.conn.recv()
            return worker.conn.recv() if outcome == _STARTED else outcome
        except (EOFError, OSError):
            return _failed("worker process died while running the trial", worker.started)
