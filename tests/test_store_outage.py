"""A real `mlflow server` killed (SIGKILL) mid-study: the study goes on, keeps every trial in its journal,
and the store catches up when the server comes back; if it does not, hpt exits non-zero with the line
that says where the trials are, and `hpt sync` sends them later."""

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
from pathlib import Path

import pytest
from conftest import BIN
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

FAST_FAILING_CLIENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # hpt retries itself: the client gives up at once
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
}
SLOW_BRANIN = ("run", "--strategy", "random", "--backend", "function", "--function", "branin", "-B", "delay=0.2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` on loopback over a SQLite store in `directory`; it can be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.directory}/server.db",
                "--artifacts-destination",
                str(self.directory / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "mlflow server exited"
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise AssertionError("mlflow server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def server(tmp_path: Path):
    server = Server(tmp_path)
    server.start()
    yield server
    server.kill()


def _finished_children(uri: str, run_id: str) -> list:
    client = MlflowClient(uri)
    parent = client.get_run(run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", max_results=500)
    return [r for r in runs if r.info.status == "FINISHED"]


def _start_study(server: Server, trials: int, *extra: str, grace: str) -> subprocess.Popen:
    env = {**os.environ, **FAST_FAILING_CLIENT, "HPT_SYNC_GRACE": grace}
    return subprocess.Popen(
        [str(BIN / "hpt"), *SLOW_BRANIN, "--trials", str(trials), "--tracking-uri", server.uri, *extra],
        cwd=server.directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_parent_and_trials(server: Server, proc: subprocess.Popen, at_least: int) -> str:
    """The study's parent run id, once the store holds `at_least` finished trials of it."""
    deadline = time.monotonic() + 90
    client = MlflowClient(server.uri)
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.3)
        experiment = client.get_experiment_by_name("hpt")
        if experiment is None:
            continue
        parents = [r for r in client.search_runs([experiment.experiment_id]) if "hpt.strategy" in r.data.tags]
        if parents and len(_finished_children(server.uri, parents[0].info.run_id)) >= at_least:
            return parents[0].info.run_id
    raise AssertionError("the study did not get going")


def test_a_server_killed_mid_study_and_restarted_ends_with_every_trial_and_exit_0(server: Server):
    proc = _start_study(server, 30, "--json", grace="120")
    try:
        run_id = _wait_for_parent_and_trials(server, proc, 3)
        server.kill()
        time.sleep(4)  # trials go on finishing while the store is away
        server.start()
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out)  # stdout is one JSON document, nothing of MLflow's on it
    assert summary["parent_run_id"] == run_id and summary["trials"]["complete"] == 30
    assert "tracking store unreachable since" in err
    children = _finished_children(server.uri, run_id)
    assert sorted(int(r.data.tags["hpt.trial"]) for r in children) == list(range(30))
    assert all("objective" in r.data.metrics and r.data.params for r in children)
    parent = MlflowClient(server.uri).get_run(run_id)
    assert parent.info.status == "FINISHED"
    assert json.loads(parent.data.tags["hpt.counts"])["complete"] == 30
    assert parent.data.metrics["best_objective"] == pytest.approx(summary["best_value"])


def test_a_server_that_stays_down_gives_a_nonzero_exit_and_hpt_sync_completes_the_store(server: Server):
    home = Path(os.environ["HPT_HOME"])
    proc = _start_study(server, 20, grace="2")
    try:
        run_id = _wait_for_parent_and_trials(server, proc, 2)
        server.kill()
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: the tracking store {server.uri} is unreachable")
    assert f"kept in {home / 'journal' / run_id}" in last and last.endswith(f"hpt sync {run_id}")
    assert "Traceback" not in err

    server.start()
    synced = subprocess.run([str(BIN / "hpt"), "sync"], capture_output=True, text=True, timeout=120)
    assert synced.returncode == 0, synced.stderr
    assert f"study {run_id}: the store {server.uri} holds everything" in synced.stdout
    children = _finished_children(server.uri, run_id)
    assert sorted(int(r.data.tags["hpt.trial"]) for r in children) == list(range(20))
    assert MlflowClient(server.uri).get_run(run_id).info.status == "FINISHED"
    assert not (home / "journal" / run_id).exists()  # the journal goes once the store holds it all
