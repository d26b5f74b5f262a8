"""`hpt studies` and the newest study of a store (what `hpt best` shows without a RUN_ID)."""

from __future__ import annotations

import json
import subprocess
import sys

import hpt
import pytest
from click.testing import CliRunner
from conftest import invoke_json
from hpt.store import newest_study_run_id
from hpt_reports.studies import studies
from mlflow.tracking import MlflowClient

ELAPSED_TAG = "hpt.elapsed_s"
"""Seconds a study ran, summed over its resumes: what its tracker writes on the parent run."""


def run_function_study(store: str, function: str, trials: int, experiment: str = "hpt") -> str:
    out = invoke_json(
        "run", "--backend", "function", "--function", function, "--trials", str(trials),
        "--experiment", experiment, "--tracking-uri", store, "--quiet",
    )  # fmt: skip
    return out["parent_run_id"]


def list_studies(store: str, *args: str) -> list[dict]:
    result = CliRunner().invoke(studies, ["--tracking-uri", store, "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["studies"]


def test_studies_lists_every_study_newest_first(store: str):
    first = run_function_study(store, "branin", 3)
    second = run_function_study(store, "hartmann6", 4)
    elsewhere = run_function_study(store, "branin", 2, experiment="other")
    rows = list_studies(store, "--experiment", "hpt")
    assert [r["run_id"] for r in rows] == [second, first]  # no trial runs, no study of another experiment
    newest = rows[0]
    assert newest["backend"] == "function" and newest["dataset"] == "hartmann6" and newest["status"] == "FINISHED"
    assert newest["trials"] == {"complete": 4} and isinstance(newest["best"], float)
    assert newest["experiment"] == "hpt"
    assert newest_study_run_id(store, "hpt") == second
    assert newest_study_run_id(store, "other") == elsewhere

    everywhere = list_studies(store)  # without --experiment: the studies of every experiment
    assert [(r["run_id"], r["experiment"]) for r in everywhere] == [
        (elsewhere, "other"), (second, "hpt"), (first, "hpt")
    ]  # fmt: skip
    table = CliRunner().invoke(studies, ["--tracking-uri", store], catch_exceptions=False).output.splitlines()
    assert table[0].split()[:6] == ["run_id", "experiment", "name", "strategy", "backend", "dataset"]
    assert table[1].split()[:2] == [elsewhere, "other"]
    assert table[2].split()[:2] == [second, "hpt"] and "4 complete" in table[2] and table[3].startswith(first)


def test_a_store_whose_studies_are_under_another_name_lists_them(store: str):
    """No `hpt` experiment at all: `hpt studies` still lists the studies, and an empty store says so."""
    assert (
        CliRunner().invoke(studies, ["--tracking-uri", store]).output
        == "the store holds no study yet; run `hpt run` first\n"
    )
    tuned = run_function_study(store, "branin", 2, experiment="tuning")
    result = CliRunner().invoke(studies, ["--tracking-uri", store])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:2] == [tuned, "tuning"]


def test_a_resumed_study_lasts_the_time_it_ran(store: str):
    """The `hpt.elapsed_s` tag (seconds run, summed over resumes) is the duration, not end - start, which
    counts the time the study was stopped."""
    run_id = run_function_study(store, "branin", 2)
    client = MlflowClient(store)
    client.set_tag(run_id, ELAPSED_TAG, "4321.5")
    (row,) = list_studies(store)
    shown = row.pop("duration")  # the tag's value, read back: no clock is involved
    assert shown == 4321.5
    table = CliRunner().invoke(studies, ["--tracking-uri", store], catch_exceptions=False).output
    assert table.splitlines()[1].endswith("72.0 min")
    client.delete_tag(run_id, ELAPSED_TAG)  # a study logged before the tag: from its start to its end
    info = client.get_run(run_id).info
    (row,) = list_studies(store)
    shown, logged = row.pop("duration"), (info.end_time - info.start_time) / 1000
    assert shown == round(logged, 1)


def test_an_unknown_experiment_is_one_line(store: str):
    result = CliRunner().invoke(studies, ["--tracking-uri", store, "--experiment", "nope"])
    assert result.exit_code == 1 and result.output.startswith("error: no experiment 'nope'")
    assert "(its experiments: 'Default'); pass one of them as --experiment" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(Exception, match="no experiment 'nope'"):
        newest_study_run_id(store, "nope")


def test_a_local_store_is_listed_without_importing_mlflow(tmp_path):
    hpt.optimize(lambda p: p["x"], {"x": hpt.Float(0, 1)}, strategy="random", trials=3, seed=0, tracking=True)
    code = (
        "import atexit, sys; atexit.register(lambda: print('mlflow' in sys.modules, file=sys.stderr)); "
        "sys.argv = ['hpt', 'studies', '--json']; from hpt.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    listing, imported = result.stdout, result.stderr.strip().splitlines()[-1]
    assert imported == "False", result.stderr
    assert [s["trials"] for s in json.loads(listing)["studies"]] == [{"complete": 3}]


def test_the_plain_sql_listing_matches_mlflows(store):
    from hpt import store_reader
    from hpt.store import STUDY_TAG

    for seed in (0, 1):
        hpt.optimize(lambda p: p["x"], {"x": hpt.Float(0, 1)}, strategy="random", trials=4, seed=seed, tracking=store)
    path = store_reader.local_sqlite(store)
    fast = store_reader.study_runs(path, STUDY_TAG, None)
    client = MlflowClient(store)
    slow = client.search_runs(list(store_reader.experiments(path)), f"tags.`{STUDY_TAG}` != ''")
    slow = [r for r in slow if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in fast] == [r.info.run_id for r in sorted(slow, key=lambda r: -r.info.start_time)]
    for a, b in zip(fast, sorted(slow, key=lambda r: -r.info.start_time), strict=True):
        assert a.data.tags == b.data.tags and a.data.metrics == b.data.metrics
        assert (a.info.status, a.info.start_time, a.info.end_time) == (
            b.info.status,
            b.info.start_time,
            b.info.end_time,
        )
