"""The scikit-optimize strategy through `hpt run` against a temporary SQLite MLflow store, and resumed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import invoke_json
from hpt.cli import cli

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters


def test_skopt_runs_and_resumes_from_the_cli(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--strategy",
            "skopt",
            "--backend",
            "function",
            "--function",
            "branin",
            "--trials",
            "12",
            "--tracking-uri",
            uri,
            "--quiet",
        ],
    )
    assert result.exit_code == 0 and result.output == ""
    first = invoke_json(
        "run",
        "--strategy",
        "skopt",
        "--backend",
        "function",
        "--function",
        "branin",
        "--trials",
        "12",
        "-O",
        "surrogate=et",
        "-O",
        "acq=EI",
        "-O",
        "n_initial_points=5",
        "--tracking-uri",
        uri,
    )
    assert first["trials"]["complete"] == 12
    resumed = invoke_json("run", "--resume", first["parent_run_id"], "--trials", "15", "--tracking-uri", uri)
    assert resumed["trials"]["complete"] == 15 and resumed["best_value"] <= first["best_value"]


def test_an_unsupported_surrogate_is_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--strategy",
            "skopt",
            "--backend",
            "function",
            "-O",
            "surrogate=foo",
            "--tracking-uri",
            f"sqlite:///{tmp_path}/m.db",
            "--quiet",
        ],
    )
    assert result.exit_code == 1
    assert result.output.strip().endswith("surrogate='foo' is not supported; use one of gp, rf, et, gbrt")
