"""The MLflow store at the CLI's boundary: a fresh store shared by studies started at once, and a store
that cannot be used (missing or read-only directory, unreachable server, a run id it does not hold)
reported as one line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import invoke_json
from hpt.cli import cli
from mlflow.tracking import MlflowClient


@pytest.mark.slow
def test_studies_started_at_once_on_a_new_store_all_open_it(tmp_path):
    """What `hpt run` does first (make_client creates and migrates the store), in three processes at once:
    unserialised, MLflow's migrations collide (`table _alembic_tmp_latest_metrics already exists`)."""
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    (tmp_path / "fresh").mkdir()
    code = "import sys; from hpt.tracking import make_client; make_client(sys.argv[1]).create_experiment(sys.argv[2])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, uri, f"study-{i}"], stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {"study-0", "study-1", "study-2"} <= names


def _error_line(*args: str, env: dict | None = None) -> str:
    result = CliRunner(env=env).invoke(cli, list(args))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _run(uri: str, env: dict | None = None) -> str:
    return _error_line("run", "--backend", "function", "--trials", "1", "--quiet", "--tracking-uri", uri, env=env)


def test_a_store_in_a_missing_directory_is_one_line():
    line = _run("sqlite:////proc/nope/x.db")
    assert "sqlite:////proc/nope/x.db" in line and "directory /proc/nope does not exist" in line


def test_a_store_in_a_read_only_directory_is_one_line(tmp_path):
    assert "directory /proc is not writable" in _run("sqlite:////proc/x.db")  # read-only even for root
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert f"directory {locked} is not writable" in _run(f"sqlite:///{locked}/mlflow.db")


def test_an_unreachable_server_is_one_line():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    line = _run(f"http://127.0.0.1:{port}", env=env)
    assert line.startswith(f"error: cannot reach the MLflow server http://127.0.0.1:{port}")
    line = _error_line("best", "0" * 32, "--tracking-uri", f"http://127.0.0.1:{port}", env=env)
    assert line.startswith(f"error: cannot reach the MLflow server http://127.0.0.1:{port}")


@pytest.mark.parametrize("command", ["best", "resume"])
def test_a_run_id_of_another_store_is_one_line(tmp_path, command):
    shutil.copy(tmp_path / "mlflow.db", tmp_path / "other.db")  # an empty store, tables made
    other = f"sqlite:///{tmp_path}/other.db"
    run_id = invoke_json("run", "--backend", "function", "--trials", "1", "--tracking-uri", other)["parent_run_id"]
    here = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["best", run_id] if command == "best" else ["run", "--resume", run_id, "--quiet"]
    line = _error_line(*args, "--tracking-uri", here)
    assert line == f"error: cannot load study {run_id!r} from {here}: Run with id={run_id} not found"
