"""The dask executor against real clusters: a LocalCluster of worker processes, and a `dask scheduler`
plus `dask worker` started as subprocesses on loopback, with MLflow on a real SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import hpt
import pytest
from conftest import BIN, child_runs
from hpt import Result, TrialState
from hpt.errors import HptError
from hpt.plugins import registry
from hpt_basic.function_backend import FunctionBackend

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

distributed = pytest.importorskip("distributed")

UNPICKLED = 0
"""How many times a CountingBackend was unpickled in this process (read on dask workers)."""


class PidBackend(FunctionBackend):
    """Branin, reporting the process that evaluated it; trial `kill_trial` kills its own worker,
    trial `hang_trial` sleeps far past any timeout."""

    def __init__(self, kill_trial: int | None = None, hang_trial: int | None = None) -> None:
        super().__init__("branin")
        self.kill_trial, self.hang_trial = kill_trial, hang_trial

    def evaluate(self, params, budget, ctx):
        if ctx.number == self.kill_trial:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60 if ctx.number == self.hang_trial else 0.1)  # long enough for both workers to get trials
        return Result(super().evaluate(params, budget, ctx), {"pid": os.getpid()})


class CountingBackend(PidBackend):
    def __setstate__(self, state: dict) -> None:
        global UNPICKLED
        UNPICKLED += 1
        self.__dict__.update(state)


def unpickled_here() -> int:
    return UNPICKLED


def holds_plugin(dask_worker, prefix: str = "hpt-backend-") -> bool:
    return any(name.startswith(prefix) for name in dask_worker.plugins)


def test_dask_executor_is_registered():
    from hpt_dask.runner import DaskRunner

    assert registry().get("executor", "dask").load() is DaskRunner


@pytest.mark.timeout(60)
def test_local_cluster_runs_a_tracked_study_in_worker_processes(store):
    study = hpt.optimize(PidBackend(), trials=8, seed=0, executor="dask", workers=2, tracking=store)
    assert study.counts()["complete"] == 8 and len(study.trials) == 8
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 8
    pids = {int(t.metrics["pid"]) for t in study.trials}
    assert len(pids) == 2 and os.getpid() not in pids
    children = child_runs(store, study.tracker.parent_run_id)
    assert sorted(r.info.run_name for r in children) == [f"trial-{i:04d}" for i in range(8)]
    assert all(r.info.status == "FINISHED" for r in children)


@pytest.mark.timeout(60)
def test_worker_killed_mid_trial_fails_that_trial_and_the_study_goes_on(store):
    study = hpt.optimize(PidBackend(kill_trial=2), trials=6, seed=0, executor="dask", workers=2, tracking=store)
    states = {t.number: t.state for t in study.trials}
    assert len(states) == 6 and states.pop(2) is TrialState.FAILED
    assert set(states.values()) == {TrialState.COMPLETE}
    assert "died while running the trial" in study.trials[2].error
    killed = [r for r in child_runs(store, study.tracker.parent_run_id) if r.info.run_name == "trial-0002"]
    assert killed[0].info.status == "FAILED" and "died" in killed[0].data.tags["hpt.error"]


@pytest.mark.timeout(60)
def test_trial_past_its_timeout_fails_and_its_worker_is_restarted():
    study = hpt.create_study(
        PidBackend(hang_trial=1), seed=0, executor="dask", workers=2, trial_timeout=3, tracking=False
    )
    study.optimize(6)
    assert study.trials[1].state is TrialState.FAILED and "timed out after 3 s" in study.trials[1].error
    assert [t.state for t in study.trials if t.number != 1] == [TrialState.COMPLETE] * 5


def test_unusable_scheduler_address_is_one_clear_error():
    with pytest.raises(HptError, match="cannot connect to the dask scheduler at 'tcp://127.0.0.1'"):
        hpt.create_study(FunctionBackend(), executor="dask", executor_options={"scheduler": "tcp://127.0.0.1"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def subprocess_cluster(tmp_path: Path):
    """A `dask scheduler` and a `dask worker` (two single-threaded processes) on loopback."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    common = {"cwd": tmp_path, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
        **common,
    )
    worker = subprocess.Popen(
        [str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"], **common
    )
    try:
        with distributed.Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=30)
            yield address, client
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.timeout(90)
def test_existing_cluster_gets_the_backend_once_per_worker(subprocess_cluster, store):
    address, client = subprocess_cluster
    study = hpt.optimize(
        CountingBackend(),
        trials=8,
        seed=0,
        executor="dask",
        workers=None,
        executor_options={"scheduler": address},
        tracking=store,
    )
    assert study.runner.workers == 2  # the cluster's worker threads
    assert study.counts()["complete"] == 8
    assert len({int(t.metrics["pid"]) for t in study.trials}) == 2
    assert sorted(client.run(unpickled_here).values()) == [1, 1]
    assert not any(client.run(holds_plugin).values())  # the study took its backend off the workers
    assert len(child_runs(store, study.tracker.parent_run_id)) == 8


def test_batches_of_trials_run_on_the_cluster():
    study = hpt.create_study(
        FunctionBackend(), strategy="random", executor="dask", workers=2, batch_trials=3, tracking=False, seed=0
    )
    study.optimize(6)
    assert study.counts()["complete"] == 6
    assert len({tuple(t.params.values()) for t in study.trials}) == 6
