"""`hpt compare`: every strategy x seed on one task, the table, the anytime plot, and what lands in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hpt_reports.commands import compare as compare_command
from hpt_reports.compare import COMPARISON_TAG, Comparison, StudyOutcome, compare
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

PNG = b"\x89PNG\r\n\x1a\n"
BRANIN = ("--backend", "function", "--function", "branin")


def invoke(*args: str):
    return CliRunner().invoke(compare_command, list(args), catch_exceptions=False)


def test_function_backend_comparison_logs_tagged_studies_a_table_and_a_plot(tmp_path: Path, store: str):
    result = invoke(
        "--strategies", "random,grid,hyperband", "--seeds", "2", "--trials", "6", *BRANIN,
        "-O", "grid.resolution=3", "--min-budget", "1", "--max-budget", "3",
        "--tracking-uri", store, "--plots", str(tmp_path / "cmp"), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {r["strategy"] for r in out["rows"]} == {"random", "grid", "hyperband"}
    assert all(r["studies"] == 2 and r["failures"] == 0 for r in out["rows"])
    medians = [r["best_median"] for r in out["rows"]]
    assert medians == sorted(medians)  # best strategy first when minimising
    plot = tmp_path / "cmp" / "anytime.png"
    assert out["plot"] == str(plot) and plot.read_bytes()[:8] == PNG
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["comparison"] == out["comparison"]

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("hpt-compare")
    tagged = client.search_runs(
        [experiment.experiment_id], f"tags.`{COMPARISON_TAG}` = '{out['comparison']}'", max_results=100
    )
    studies = [r for r in tagged if r.data.tags.get("hpt.kind") != "comparison"]
    assert len(studies) == 6 and len(tagged) == 7
    assert {(r.data.tags["hpt.strategy"], r.data.tags["hpt.seed"]) for r in studies} == {
        (s, str(seed)) for s in ("random", "grid", "hyperband") for seed in (0, 1)
    }
    by_run = {s["run_id"]: s for s in out["studies"]}
    for run in studies:
        children = client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", max_results=100
        )
        assert len(children) == by_run[run.info.run_id]["trials"]
        if run.data.tags["hpt.strategy"] != "hyperband":  # hyperband's best is at the largest budget only
            assert min(c.data.metrics["objective"] for c in children) == by_run[run.info.run_id]["best_value"]
    random_bests = [s["best_value"] for s in out["studies"] if s["strategy"] == "random"]
    random_row = next(r for r in out["rows"] if r["strategy"] == "random")
    assert random_row["best_median"] == pytest.approx(float(np.median(random_bests)))

    summary = client.get_run(out["run_id"])
    assert summary.info.status == "FINISHED" and summary.info.run_name.startswith("compare-function-branin-")
    assert {a.path for a in client.list_artifacts(out["run_id"])} >= {"anytime.png", "comparison.json"}
    assert summary.data.metrics["random.best_median"] == pytest.approx(random_row["best_median"])


def test_human_output_is_a_table_with_a_row_per_strategy(tmp_path: Path, store: str):
    result = invoke(
        "--strategies", "random,deap", "--seeds", "2", "--trials", "5", *BRANIN, "--tracking-uri", store,
        "--plots", str(tmp_path / "p"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("strategy"))
    assert "best value median [IQR]" in lines[header] and "failed" in lines[header]
    assert sorted(line.split()[0] for line in lines[header + 1 : header + 3]) == ["deap", "random"]
    assert f"plot: {tmp_path / 'p' / 'anytime.png'}" in result.output
    assert (tmp_path / "p" / "anytime.png").exists()


def test_the_default_plot_directory_is_named_after_the_comparison(tmp_path: Path, store: str):
    out = json.loads(
        invoke(
            "--strategies", "random", "--seeds", "1", "--trials", "3", *BRANIN, "--tracking-uri", store, "--json"
        ).output
    )
    assert out["plot"] == f"hpt-compare-{out['comparison']}/anytime.png"
    assert (tmp_path / f"hpt-compare-{out['comparison']}" / "anytime.png").exists()


def test_mlp_comparison_covers_classification_and_regression(tmp_path: Path, store: str):
    for dataset, metric in (("digits", "valid_loss"), ("diabetes", "valid_loss")):
        out = json.loads(
            invoke(
                "--strategies", "random,hyperband", "--seeds", "1", "--trials", "2", "--dataset", dataset,
                "--size", "150", "--set", "max_epochs=2", "--set", "n_neurons=16..32", "--min-budget", "1",
                "--max-budget", "2", "--tracking-uri", store, "--plots", str(tmp_path / dataset), "--json",
            ).output
        )  # fmt: skip
        assert out["task"] == f"mlp-{dataset}" and out["metric"] == metric
        assert all(r["best_median"] is not None and r["failures"] == 0 for r in out["rows"])
        assert (tmp_path / dataset / "anytime.png").exists()


def test_an_unknown_strategy_fails_before_any_study_runs(tmp_path: Path):
    result = CliRunner().invoke(compare_command, ["--strategies", "random,nope", *BRANIN])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "unknown strategy 'nope'" in result.output
    assert MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_experiment_by_name("hpt") is None  # nothing logged


def test_an_option_for_a_strategy_not_compared_is_an_error():
    result = CliRunner().invoke(compare_command, ["--strategies", "random", "-O", "grid.resolution=3", *BRANIN])
    assert result.exit_code == 1
    assert "'grid' is not one of the compared strategies (random)" in result.output


def test_python_api_without_tracking_on_a_callable():
    result = compare(
        lambda p: (p["x"] - 0.3) ** 2, ["random", "grid"], seeds=[0, 1, 2], trials=6, space={"x": [0.0, 0.3, 0.9]},
        tracking=False,
    )  # fmt: skip
    assert result.run_id is None and result.plot is None
    assert len(result.outcomes) == 6 and all(o.curve for o in result.outcomes)
    grid = next(r for r in result.rows() if r["strategy"] == "grid")
    assert grid["trials_median"] == 3  # the grid is exhausted after its three points
    assert grid["best_median"] == grid["best_q25"] == grid["best_q75"] == 0.0
    curve = next(o.curve for o in result.outcomes if o.strategy == "grid")
    assert [point[1] for point in curve] == [1, 2, 3] and curve[-1][2] == 0.0


def test_rows_give_median_and_interquartile_range_best_first():
    def outcome(strategy: str, seed: int, best: float | None, failures: int = 0) -> StudyOutcome:
        return StudyOutcome(strategy, seed, f"{strategy}-{seed}", None, best, 2.0 + seed, 10, failures)

    outcomes = [outcome("a", s, v) for s, v in enumerate([1.0, 2.0, 3.0, 4.0])]
    outcomes += [outcome("b", 0, 9.0, failures=2), outcome("b", 1, None, failures=10)]
    rows = Comparison("id", "task", "accuracy", "maximize", 10, outcomes).rows()
    assert [r["strategy"] for r in rows] == ["b", "a"]
    a = rows[1]
    assert (a["best_median"], a["best_q25"], a["best_q75"]) == (2.5, 1.75, 3.25)
    assert (a["trials_median"], a["failures"]) == (10.0, 0)
    quartiles = [a[f"seconds_{q}"] for q in ("q25", "median", "q75")]  # the outcomes' recorded durations 2, 3, 4, 5
    assert quartiles == [2.75, 3.5, 4.25]
    assert rows[0]["best_median"] == 9.0 and rows[0]["failures"] == 12
