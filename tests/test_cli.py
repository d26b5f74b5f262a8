"""The `hpt` command line, run as a user runs it (a subprocess against a temp SQLite store)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import child_runs, cli_json, run_cli
from hpt.cli import cli
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

BRANIN = ("--backend", "function", "--function", "branin")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_random_branin_logs_one_parent_and_twenty_children(tmp_path):
    summary = cli_json("run", "--strategy", "random", *BRANIN, "--trials", "20", "--seed", "0")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert summary["tracking_uri"] == uri and (tmp_path / "mlflow.db").exists()
    assert summary["trials"]["complete"] == 20
    children = child_runs(uri, summary["parent_run_id"])
    assert len(children) == 20
    for run in children:
        assert set(run.data.params) == {"x1", "x2"}
        assert "objective" in run.data.metrics
    assert min(r.data.metrics["objective"] for r in children) == summary["best_value"]
    experiments = MlflowClient(uri).search_experiments()
    assert "hpt" in {e.name for e in experiments}


def test_grid_and_the_example_plugin_run_through_the_cli(tmp_path):
    for strategy in ("grid", "halton"):
        summary = cli_json(
            "run",
            "--strategy",
            strategy,
            *BRANIN,
            "--trials",
            "9",
            "-O",
            "resolution=3" if strategy == "grid" else "skip=5",
        )
        children = child_runs(f"sqlite:///{tmp_path}/mlflow.db", summary["parent_run_id"])
        assert len(children) == 9
        assert summary["best_value"] >= 0.397887


def test_unknown_strategy_is_one_line_naming_the_available_ones():
    result = run_cli("run", "--strategy", "nope", *BRANIN)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        lines[0].startswith("error: unknown strategy 'nope'; available: ")
        and "grid" in lines[0]
        and "random" in lines[0]
    )


def test_bad_input_gets_one_line_and_a_nonzero_exit(tmp_path):
    bad_space = tmp_path / "space.yaml"
    bad_space.write_text("x1: {type: float, low: 5, high: 1}\n")
    cases = [
        (["--backend", "nope"], "error: unknown backend 'nope'; available: "),
        ([*BRANIN[:2], "--function", "nope"], "error: unknown function 'nope'; available: "),
        ([*BRANIN, "--space", str(bad_space)], "error: space file "),
        ([*BRANIN, "--set", "x9=1"], "error: --set x9: unknown parameter; the space has x1, x2"),
        ([*BRANIN, "--set", "x1"], "error: --set 'x1': expected NAME=VALUE"),
        ([*BRANIN, "--set", "x1=abc"], "error: --set x1=abc: value must be a number"),
        (
            [*BRANIN, "--strategy", "random", "-O", "colour=red"],
            "error: strategy 'random' does not take option 'colour'",
        ),
        (["--resume", "0123456789abcdef"], "error: cannot load study '0123456789abcdef'"),
    ]
    for args, expected in cases:
        result = invoke("run", *args, "--trials", "2")
        assert result.exit_code == 1, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith(expected), (args, result.output)


def test_space_file_and_set_shape_the_search(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('[x1]\ntype = "float"\nlow = 0\nhigh = 1\n[x2]\ntype = "float"\nlow = 0\nhigh = 15\n')
    summary = cli_json(
        "run", "--strategy", "random", *BRANIN, "--space", str(space), "--set", "x2=2..3", "--trials", "15"
    )
    for run in child_runs(f"sqlite:///{tmp_path}/mlflow.db", summary["parent_run_id"]):
        assert 0 <= float(run.data.params["x1"]) <= 1 and 2 <= float(run.data.params["x2"]) <= 3
    pinned = cli_json("run", *BRANIN, "--set", "x1=3.0", "--trials", "3")
    assert pinned["best_params"]["x1"] == 3.0


def test_resume_and_best(tmp_path):
    first = cli_json("run", "--strategy", "grid", *BRANIN, "--trials", "6", "-O", "resolution=4")
    resumed = cli_json("run", "--resume", first["parent_run_id"], "--trials", "16")
    assert resumed["parent_run_id"] == first["parent_run_id"] and resumed["trials"]["complete"] == 16
    children = child_runs(f"sqlite:///{tmp_path}/mlflow.db", first["parent_run_id"])
    assert len({(r.data.params["x1"], r.data.params["x2"]) for r in children}) == 16  # the grid went on
    best = run_cli("best", first["parent_run_id"], "--json")
    assert best.returncode == 0 and json.loads(best.stdout)["value"] == resumed["best_value"]
    text = run_cli("best", first["parent_run_id"]).stdout
    assert text.splitlines()[0].startswith(f"study {resumed['study']} ")
    assert text.splitlines()[1].startswith(f"best trial {resumed['best_trial']}: value ")


def test_multi_objective_best_prints_the_pareto_front():
    summary = cli_json("run", "--backend", "function", "--function", "zdt1", "--trials", "12")
    assert summary["pareto_front"]
    front = json.loads(run_cli("best", summary["parent_run_id"], "--json").stdout)["pareto_front"]
    assert sorted(p["trial"] for p in front) == sorted(p["trial"] for p in summary["pareto_front"])


def test_human_output_and_quiet():
    text = invoke("run", *BRANIN, "--trials", "3").output
    assert "best value" in text and "x1 = " in text and "MLflow run " in text
    assert invoke("run", *BRANIN, "--trials", "3", "--quiet").output == ""


def test_help_and_plugins_do_not_import_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys; from hpt.cli import main; sys.argv=['hpt', 'plugins']; "
        "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main()\n    except SystemExit: pass\n"
        "print(sorted(m for m in ('mlflow', 'torch', 'skopt', 'deap', 'dask', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_resume_says_trials_is_the_new_total(tmp_path):
    first = cli_json("run", "--strategy", "random", *BRANIN, "--trials", "3")
    resumed = run_cli("run", "--resume", first["parent_run_id"], "--trials", "5", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {first['study']}: 3 trials done, 2 to run, 5 in all (--trials sets the total)" in resumed.stderr
    assert "5 complete" in resumed.stdout
