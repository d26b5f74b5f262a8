"""A real MLflow tracking server (started by `hpt ui` on loopback) serves a study's store: the parent run,
the child runs, their params and their stepped metrics are all there through MLflow's REST API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import cli_json
from hpt_reports.commands import server_command, store_uri, ui

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

STARTUP_LIMIT = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **query: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}{path}", json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_until_up(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"hpt ui exited with status {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"no MLflow server answered on {base} within {STARTUP_LIMIT:.0f} s")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture
def study(tmp_path: Path) -> dict:
    """A small successive-halving study in ./mlflow.db (MLflow's default store, as `hpt run` uses it):
    six configurations at one epoch, the best two continued to three epochs."""
    return cli_json(
        "run",
        "--strategy",
        "successive-halving",
        "--min-budget",
        "1",
        "--max-budget",
        "3",
        "--backend",
        "function",
        "--function",
        "branin",
        "--trials",
        "6",
    )


def test_hpt_ui_serves_the_study_through_the_rest_api(study: dict, tmp_path: Path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from hpt_reports.commands import ui; ui()", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        announced = server.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        assert base in announced and f"sqlite:///{tmp_path}/mlflow.db" in announced
        _wait_until_up(base, server)

        experiment = _get(base, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="hpt")["experiment"]
        parent_id = study["parent_run_id"]
        parent = _get(base, "/api/2.0/mlflow/runs/get", run_id=parent_id)["run"]
        parent_tags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
        assert parent["info"]["status"] == "FINISHED"
        assert parent_tags["hpt.strategy"] == "successive-halving" and parent_tags["hpt.backend"] == "function"

        children = _post(
            base,
            "/api/2.0/mlflow/runs/search",
            {
                "experiment_ids": [experiment["experiment_id"]],
                "filter": f"tags.mlflow.parentRunId = '{parent_id}'",
                "max_results": 100,
            },
        )["runs"]
        assert sorted(r["info"]["run_name"] for r in children) == [f"trial-{i:04d}" for i in range(6)]
        for run in children:
            assert {p["key"] for p in run["data"]["params"]} == {"x1", "x2"}
            assert "objective" in {m["key"] for m in run["data"]["metrics"]}

        promoted = [r for r in children if {t["key"]: t["value"] for t in r["data"]["tags"]}["hpt.budget"] == "3.0"]
        assert len(promoted) == 2
        for run in promoted:
            history = _get(
                base, "/api/2.0/mlflow/metrics/get-history", run_id=run["info"]["run_id"], metric_key="value"
            )["metrics"]
            assert sorted(m["step"] for m in history) == [0, 1, 2]

        best = _get(base, "/api/2.0/mlflow/metrics/get-history", run_id=parent_id, metric_key="best_objective")
        steps = sorted(m["step"] for m in best["metrics"])
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 6  # one per finished evaluation
        assert min(m["value"] for m in best["metrics"]) == pytest.approx(study["best_value"])
    finally:
        _stop(server)
    assert server.poll() is not None


def test_ui_uses_the_store_hpt_run_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert store_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/other.db")
    assert store_uri(None) == f"sqlite:///{tmp_path}/other.db"
    command = server_command(store_uri(None), "127.0.0.1", 5123)
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/other.db"


def test_ui_on_a_server_uri_points_there_instead_of_starting_one():
    result = CliRunner().invoke(ui, ["--tracking-uri", "http://mlflow.example:5000"])
    assert result.exit_code == 0
    assert "http://mlflow.example:5000 is an MLflow server already" in result.output
