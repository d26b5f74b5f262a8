"""Shared fixtures: every test runs in its own working directory, so MLflow's default store
(./mlflow.db), artifacts and study journals never land in the repository or the home folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables created once: creating them takes seconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _empty_store: Path) -> Path:
    """Each test in its own directory, holding a fresh copy of an empty store as ./mlflow.db."""
    shutil.copy(_empty_store, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HPT_HOME", str(tmp_path / "hpt-home"))  # journals of this test's studies
    return tmp_path


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A tracking URI of a fresh SQLite MLflow store."""
    return f"sqlite:///{tmp_path}/mlflow.db"


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the installed `hpt` command as a user would."""
    return subprocess.run(
        [str(BIN / "hpt"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def cli_json(*args: str, **kwargs) -> dict:
    result = run_cli(*args, "--json", **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def invoke_json(*args: str) -> dict:
    """Run the `hpt` group in this process with `--json` and return its summary (faster than `cli_json`)."""
    from click.testing import CliRunner
    from hpt.cli import cli

    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def child_runs(uri: str, parent_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    return client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)
