"""`hpt studies` and the newest study of a store (what `hpt best` shows without a RUN_ID)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import invoke_json
from hpt.store import newest_study_run_id
from hpt_reports.studies import studies


def run_function_study(store: str, function: str, trials: int, experiment: str = "hpt") -> str:
    out = invoke_json(
        "run", "--backend", "function", "--function", function, "--trials", str(trials),
        "--experiment", experiment, "--tracking-uri", store, "--quiet",
    )  # fmt: skip
    return out["parent_run_id"]


def test_studies_lists_every_study_newest_first(store: str):
    first = run_function_study(store, "branin", 3)
    second = run_function_study(store, "hartmann6", 4)
    elsewhere = run_function_study(store, "branin", 2, experiment="other")
    result = CliRunner().invoke(studies, ["--tracking-uri", store, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["studies"]
    assert [r["run_id"] for r in rows] == [second, first]  # no trial runs, no study of another experiment
    newest = rows[0]
    assert newest["backend"] == "function" and newest["dataset"] == "hartmann6" and newest["status"] == "FINISHED"
    assert newest["trials"] == {"complete": 4} and isinstance(newest["best"], float)
    assert newest_study_run_id(store, "hpt") == second
    assert newest_study_run_id(store, "other") == elsewhere

    table = CliRunner().invoke(studies, ["--tracking-uri", store], catch_exceptions=False).output.splitlines()
    assert table[0].split()[:5] == ["run_id", "name", "strategy", "backend", "dataset"]
    assert table[1].startswith(second) and "4 complete" in table[1] and table[2].startswith(first)


def test_an_unknown_experiment_is_one_line(store: str):
    result = CliRunner().invoke(studies, ["--tracking-uri", store, "--experiment", "nope"])
    assert result.exit_code == 1 and result.output.startswith("error: no experiment 'nope'")
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(Exception, match="no experiment 'nope'"):
        newest_study_run_id(store, "nope")
