"""Studies that survive: SIGKILL then resume, Ctrl-C, trial timeouts, failure limits, parallel
workers writing one store. The CLI runs as a real subprocess and is killed for real."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import hpt
import pytest
from conftest import BIN, child_runs, cli_json, run_cli
from hpt import Float, TrialState
from hpt_basic.function_backend import FunctionBackend
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

SLOW_BRANIN = ("--strategy", "random", "--backend", "function", "--function", "branin", "-B", "delay=0.25")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """The CLI as a user's terminal starts it: with SIGINT at its default even where this test process
    ignores it (a job started in the background by a shell without job control ignores SIGINT, and
    Python leaves an ignored SIGINT ignored, so Ctrl-C would never reach the CLI)."""
    return subprocess.Popen(
        [str(BIN / "hpt"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def wait_for_finished_children(proc: subprocess.Popen, uri: str, at_least: int, timeout: float = 60) -> str:
    """Poll the store with plain SQL (an MLflow client would race the study's own table creation)
    until `at_least` trials are complete; return the study's parent run id."""
    db = uri.removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                done = conn.execute(
                    "SELECT count(*) FROM tags WHERE key = 'hpt.state' AND value = 'complete'"
                ).fetchone()
                parent = conn.execute("SELECT run_uuid FROM runs WHERE name LIKE 'random-%'").fetchone()
        except sqlite3.Error:  # not created yet
            continue
        if parent and done[0] >= at_least:
            return parent[0]
    raise AssertionError(f"fewer than {at_least} trials finished in {timeout} s")


def test_sigkill_mid_study_then_resume_loses_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = start_cli("run", *SLOW_BRANIN, "--trials", "12", "--quiet", cwd=tmp_path)
    try:
        run_id = wait_for_finished_children(proc, uri, 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    before = {r.data.tags["hpt.trial"]: r for r in child_runs(uri, run_id)}
    finished_before = {
        n: r.data.metrics["objective"] for n, r in before.items() if r.data.tags["hpt.state"] == "complete"
    }
    assert len(finished_before) >= 3

    summary = cli_json("run", "--resume", run_id, cwd=tmp_path)
    assert summary["parent_run_id"] == run_id
    after = child_runs(uri, run_id)
    complete = [r for r in after if r.data.tags["hpt.state"] == "complete"]
    assert len(complete) == 12 == summary["trials"]["complete"]
    for run in complete:  # every trial that had finished is still there, unchanged
        number = run.data.tags["hpt.trial"]
        if number in finished_before:
            assert run.data.metrics["objective"] == finished_before[number]
    assert len({r.data.tags["hpt.trial"] for r in after}) == len(after)  # no duplicate trial numbers
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"


def test_ctrl_c_marks_the_study_killed_and_keeps_finished_trials(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = start_cli("run", *SLOW_BRANIN, "--trials", "50", "--quiet", cwd=tmp_path)
    try:
        run_id = wait_for_finished_children(proc, uri, 2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert f"continue with: hpt run --resume {run_id}" in err
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
    runs = child_runs(uri, run_id)
    assert sum(r.data.tags["hpt.state"] == "complete" for r in runs) >= 2
    assert all(r.info.status != "RUNNING" for r in runs)


def sleepy(params):
    time.sleep(params["x"])
    return params["x"]


@pytest.mark.parametrize("workers", [1, 2])
def test_trial_timeout_fails_only_the_slow_trials(workers):
    study = hpt.create_study(sleepy, {"x": Float(0.0, 1.0)}, seed=0, tracking=False, workers=workers, trial_timeout=0.5)
    for x in (0.05, 0.9, 0.1, 0.95, 0.05):
        study.enqueue({"x": x})
    study.optimize(5)
    states = [(t.params["x"], t.state, t.error) for t in study.trials]
    assert [s for _, s, _ in states] == [
        TrialState.COMPLETE,
        TrialState.FAILED,
        TrialState.COMPLETE,
        TrialState.FAILED,
        TrialState.COMPLETE,
    ]
    assert all(e == "timed out after 0.5 s" for _, s, e in states if s is TrialState.FAILED)


def test_failure_limit_stops_the_cli_with_the_last_error(tmp_path):
    result = run_cli(
        "run",
        "--backend",
        "function",
        "--function",
        "branin",
        "--set",
        "x1=1e200",
        "--trials",
        "10",
        "--max-failures",
        "2",
        "--quiet",
        cwd=tmp_path,
    )
    # with x1 pinned at 1e200 branin overflows to inf, which fails every trial
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: stopped after 2 failed trials; last error: ")


def test_parallel_workers_write_exactly_the_requested_trials(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    study = hpt.create_study(FunctionBackend("hartmann6", delay=0.02), seed=0, tracking=uri, workers=2)
    study.optimize(24)
    runs = child_runs(uri, study.tracker.parent_run_id)
    assert len(runs) == 24
    assert sorted(int(r.data.tags["hpt.trial"]) for r in runs) == list(range(24))
    assert len({json.dumps(r.data.params, sort_keys=True) for r in runs}) == 24
    assert all(r.info.status == "FINISHED" for r in runs)


def test_workers_limit_their_threads():
    study = hpt.optimize(threads_from_worker, {"x": Float(0, 1)}, trials=2, workers=2)
    assert {t.value for t in study.trials} == {float(max(1, (os.cpu_count() or 1) // 2))}


def threads_from_worker(params):
    """Module-level so worker processes can import it."""
    return float(os.environ.get("OMP_NUM_THREADS", "0"))
