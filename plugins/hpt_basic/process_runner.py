"""The `process` executor: `--workers N` local processes, each running one trial at a time.

It keeps one pipe per worker process instead of using `concurrent.futures.ProcessPoolExecutor`: a
pool cannot kill the one worker whose trial ran past its timeout, and a pool whose worker dies fails
every trial in flight. Here a dead or killed worker fails only its own trial and is replaced; the
backend is shipped to each worker once, when the worker starts, not with every trial.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait

from hpt.backend import Backend
from hpt.evaluation import TrialOutcome, TrialTask, evaluate_trial
from hpt.executors import Runner, failed_outcome, limit_threads, worker_context

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
            outcome = failed_outcome(f"worker process died ({reason}) while running the trial", worker.started)
            self._replace(worker)
        worker.release().set_result(outcome)

    def _expire_timeouts(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.started and worker.task.timeout and now - worker.started >= worker.task.timeout:
                timeout = worker.task.timeout
                future = worker.release()
                self._replace(worker)
                future.set_result(failed_outcome(f"timed out after {timeout:g} s", now - timeout))

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers[self._workers.index(worker)] = _Worker(self._context, self.backend, self._threads)

    def close(self, cancel: bool = False) -> None:
        if not self._workers:
            return
        with self._lock:
            self._closing = True
            for _, future in self._queue:
                future.set_result(failed_outcome("cancelled before it started"))
            self._queue.clear()
        self._wake_write.send(b"")
        self._collector.join(timeout=10)
        for worker in self._workers:
            if worker.future is not None:
                outcome = (
                    failed_outcome("cancelled while running", worker.started) if cancel else self._finish_one(worker)
                )
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
            return failed_outcome("worker process died while running the trial", worker.started)
