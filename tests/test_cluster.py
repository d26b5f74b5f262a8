"""hpt on a cluster as on separate machines: a `dask scheduler` and two `dask worker`s started here, each in
a working directory of its own, sharing nothing but the scheduler's address, an `mlflow server` and a
checkpoint store. ASHA's and hyperband's promoted trials continue from their checkpoints on whichever
worker gets them, and a worker lost mid-trial has its trial re-run on the other one.

Checkpoints at a URL (`hpt.checkpoints`) are staged through a local copy on each worker; the first tests
check that staging in one process and across the process executor's workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path

import hpt
import pytest
from conftest import BIN, child_runs
from hpt import TrialState
from hpt.checkpoints import exists, fetched, remove, trial_location, working_dir
from hpt.evaluation import BatchTask, TrialTask, evaluate_trial
from hpt_basic.function_backend import FunctionBackend
from hpt_basic.process_runner import ProcessRunner

STARTUP_LIMIT = 90.0


class TracedBackend(FunctionBackend):
    """Branin trained epoch by epoch (`FunctionBackend` keeps `state.json` in the checkpoint directory and
    continues from it); each evaluation also appends where it ran to `runs.txt` there. The first
    evaluation of a promoted trial kills its whole worker (nanny included, as a machine lost), once."""

    def __init__(self, kill_marker: str | None = None, delay: float = 0.0) -> None:
        super().__init__("branin", delay=delay)
        self.kill_marker = kill_marker

    def evaluate(self, params, budget, ctx):
        where = os.environ.get("HPT_TEST_WORKER", f"pid-{os.getpid()}")
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        with open(ctx.checkpoint_dir / "runs.txt", "a") as runs:
            runs.write(f"{where} {budget:g}\n")
        if self.kill_marker and budget > 1 and not os.path.exists(self.kill_marker):
            Path(self.kill_marker).write_text(f"{where} {ctx.number} {budget:g}")
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return super().evaluate(params, budget, ctx)


def runs_of(checkpoint: Path) -> list[tuple[str, float]]:
    lines = (checkpoint / "runs.txt").read_text().split("\n")
    return [(line.split()[0], float(line.split()[1])) for line in lines if line]


def steps(outcome) -> list[int]:
    return [step for step, _ in outcome.intermediate]


def test_a_url_checkpoint_is_staged_and_a_larger_budget_continues_from_it(tmp_path: Path):
    url = f"file://{tmp_path}/store"
    location = trial_location(url, 3)
    assert location == f"{url}/trial-0003" and trial_location(tmp_path, 3) == tmp_path / "trial-0003"
    backend = TracedBackend()
    first = evaluate_trial(backend, TrialTask(3, {"x1": 1.0, "x2": 2.0}, budget=2, checkpoint_dir=location))
    assert first.state is TrialState.COMPLETE and steps(first) == [0, 1]
    stored = tmp_path / "store" / "trial-0003"
    assert json.loads((stored / "state.json").read_text()) == {"epochs": 2}
    second = evaluate_trial(backend, TrialTask(3, {"x1": 1.0, "x2": 2.0}, budget=5, checkpoint_dir=location))
    assert steps(second) == [2, 3, 4] and json.loads((stored / "state.json").read_text()) == {"epochs": 5}
    assert exists(location) and not exists(f"{url}/trial-0004")
    with fetched(location) as local:
        assert local != stored and json.loads((local / "state.json").read_text()) == {"epochs": 5}
    with fetched(f"{url}/trial-0004") as local:
        assert local is None
    remove(url)
    assert not (tmp_path / "store").exists()


def test_a_path_is_used_in_place_and_a_batch_stages_each_member(tmp_path: Path):
    with working_dir(tmp_path / "in-place") as local:
        assert local == tmp_path / "in-place"
    url = f"memory://hpt-test-{os.getpid()}"
    batch = BatchTask(
        [TrialTask(n, {"x1": 0.0, "x2": 0.0}, budget=2, checkpoint_dir=trial_location(url, n)) for n in (0, 1)]
    )
    assert [steps(o) for o in evaluate_trial(TracedBackend(), batch)] == [[0, 1], [0, 1]]
    batch = BatchTask(
        [TrialTask(n, {"x1": 0.0, "x2": 0.0}, budget=3, checkpoint_dir=trial_location(url, n)) for n in (0, 1)]
    )
    assert [steps(o) for o in evaluate_trial(TracedBackend(), batch)] == [[2], [2]]
    remove(url)


def test_an_unusable_checkpoint_url_fails_the_trial_with_one_line():
    outcome = evaluate_trial(
        TracedBackend(), TrialTask(0, {"x1": 0.0, "x2": 0.0}, budget=1, checkpoint_dir="nope://x/y")
    )
    assert outcome.state is TrialState.FAILED
    assert outcome.error.startswith("checkpoint URL 'nope://x/y':") and "\n" not in outcome.error


def test_process_workers_continue_each_others_checkpoints_through_a_url(tmp_path: Path):
    url = f"file://{tmp_path}/store"
    runner = ProcessRunner(2)
    runner.start(TracedBackend(delay=0.05))
    try:
        done = 0
        for budget in (1, 3, 9):  # each budget's four trials spread over both workers
            tasks = [
                TrialTask(n, {"x1": n, "x2": 1.0}, budget, checkpoint_dir=trial_location(url, n)) for n in range(4)
            ]
            finished, _ = wait([runner.submit(task) for task in tasks])
            assert [steps(f.result()) for f in finished] == [list(range(done, budget))] * 4
            done = budget
    finally:
        runner.close()
    for n in range(4):
        assert [b for _, b in runs_of(tmp_path / "store" / f"trial-{n:04d}")] == [1, 3, 9]


# A cluster of processes in directories of their own ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    scheduler: str
    tracking_uri: str
    workers: dict[str, subprocess.Popen]
    store: Path
    """The shared checkpoint store (a directory every worker sees)."""


def _start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    return subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # each its own process group: stopping one stops all it started
    )


def _stop(process: subprocess.Popen) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def _wait_for_server(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"no MLflow server answered on {base} within {STARTUP_LIMIT:.0f} s")


@pytest.fixture
def cluster(tmp_path: Path):
    distributed = pytest.importorskip("distributed")
    scheduler = f"tcp://127.0.0.1:{_free_port()}"
    tracking = f"http://127.0.0.1:{_free_port()}"
    dask = str(BIN / "dask")
    processes = [
        _start([dask, "scheduler", "--host", "127.0.0.1", "--port", scheduler.rsplit(":", 1)[1], "--no-dashboard"],
               tmp_path / "scheduler"),
        _start([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server/mlflow.db",
                "--host", "127.0.0.1", "--port", tracking.rsplit(":", 1)[1], "--workers", "1"], tmp_path / "server"),
    ]  # fmt: skip
    workers = {
        name: _start(
            [dask, "worker", scheduler, "--name", name, "--nthreads", "1", "--no-dashboard"],
            tmp_path / name,
            HPT_TEST_WORKER=name,
        )
        for name in ("worker-a", "worker-b")
    }
    try:
        with distributed.Client(scheduler, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=STARTUP_LIMIT)
        _wait_for_server(tracking, processes[1])
        yield Cluster(scheduler, tracking, workers, tmp_path / "shared")
    finally:
        for process in [*workers.values(), *processes]:
            _stop(process)


def _study_takes_url_roots(tmp_path: Path) -> bool:
    """Whether a study hands its trials URL checkpoint places for a URL `checkpoint_root`."""
    study = hpt.create_study(FunctionBackend(), tracking=False, checkpoint_root=f"file://{tmp_path}/probe")
    return isinstance(study.checkpoint_root, str)


@pytest.fixture(params=["path", "file-url"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """How the workers share checkpoints: a directory they all see, or the same one as a file:// URL."""
    if request.param == "file-url" and not _study_takes_url_roots(tmp_path):
        pytest.skip("this Study turns checkpoint_root into a Path: URL roots reach it through hpt.checkpoints")
    return request.param


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_asha_then_hyperband_on_two_workers_continue_promoted_trials_from_shared_checkpoints(
    store: str, cluster: Cluster
):
    cluster.store.mkdir()

    def tune(strategy: str, backend: TracedBackend) -> tuple[hpt.Study, Path]:
        checkpoints = cluster.store / strategy
        study = hpt.optimize(
            backend,
            strategy=strategy,
            strategy_options={"min_budget": 1, "max_budget": 9, "eta": 3},
            trials=9,
            seed=0,
            executor="dask",
            executor_options={"scheduler": cluster.scheduler},
            workers=2,
            tracking=cluster.tracking_uri,
            checkpoint_root=str(checkpoints) if store == "path" else f"file://{checkpoints}",
        )
        assert study.counts()["complete"] == 9 and study.counts()["failed"] == 0
        assert len(child_runs(cluster.tracking_uri, study.tracker.parent_run_id)) == 9
        for trial in study.trials:  # every epoch once across its budgets: each budget continued from the last
            assert [step for step, _ in trial.intermediate] == list(range(int(trial.budget_history[-1])))
        return study, checkpoints

    study, checkpoints = tune("asha", TracedBackend(delay=0.05))
    promoted = [t for t in study.trials if len(t.budget_history) > 1]
    assert promoted
    runs = [runs_of(checkpoints / f"trial-{t.number:04d}") for t in promoted]
    assert {where for r in runs for where, _ in r} == {"worker-a", "worker-b"}

    marker = cluster.store / "killed-worker"
    study, checkpoints = tune("hyperband", TracedBackend(kill_marker=str(marker), delay=0.05))
    killed, number, budget = marker.read_text().split()
    survivor = ({"worker-a", "worker-b"} - {killed}).pop()
    assert cluster.workers[killed].poll() is not None  # that worker, nanny and all, is gone
    assert len(study.trials[int(number)].budget_history) > 1
    runs_killed = runs_of(checkpoints / f"trial-{int(number):04d}")
    assert (survivor, float(budget)) in runs_killed  # the trial its worker died in, run again on the other
    if store == "path":  # in place, the start on the lost worker left its line; a staged copy died with it
        assert (killed, float(budget)) in runs_killed
