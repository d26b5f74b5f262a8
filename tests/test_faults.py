"""Faults caused for real: two processes resuming one study, a lease held by another machine, SIGTERM and
SIGHUP, a second Ctrl-C while stopping, a store whose disk fills up (RLIMIT_FSIZE in the child), a journal
that cannot be written (/dev/full), and a store that lost or doubled trials."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import hpt
import pytest
from conftest import BIN, child_runs, run_cli
from hpt import Float
from hpt.errors import HptError
from hpt.lease import LEASE_TAG, Lease
from hpt_basic.function_backend import FunctionBackend
from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from test_crash_safety import SLOW_BRANIN, start_cli, wait_for_finished_children

pytestmark = pytest.mark.slow


def _killed_study(tmp_path: Path, trials: int = 12, finished: int = 3) -> tuple[str, str]:
    """A study SIGKILLed after `finished` trials: (store uri, parent run id)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = start_cli("run", *SLOW_BRANIN, "--trials", str(trials), "--quiet", cwd=tmp_path)
    try:
        run_id = wait_for_finished_children(proc, uri, finished)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    return uri, run_id


def test_two_resumes_at_once_run_each_trial_once(tmp_path: Path):
    uri, run_id = _killed_study(tmp_path)
    first = start_cli("run", "--resume", run_id, "--json", cwd=tmp_path)
    time.sleep(0.5)
    second = start_cli("run", "--resume", run_id, "--json", cwd=tmp_path)
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=120)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 1], (err1, err2)
    refused = err1 if first.returncode else err2
    assert refused.count("\n") == 1 and refused.startswith(f"error: study {run_id} is being run by pid ")
    assert "on this machine" in refused
    runs = child_runs(uri, run_id)
    numbers = [int(r.data.tags["hpt.trial"]) for r in runs]
    assert len(numbers) == len(set(numbers))  # each trial once
    assert sum(r.data.tags["hpt.state"] == "complete" for r in runs) == 12
    complete = [r for r in runs if r.data.tags["hpt.state"] == "complete"]
    assert len({json.dumps(r.data.params, sort_keys=True) for r in complete}) == 12


def _foreign_lease(uri: str, run_id: str, expires_in: float) -> None:
    """What a runner on another machine leaves on the parent run."""
    lease = Lease("build-node-7", 4242, time.time() + expires_in)
    MlflowClient(uri).set_tag(run_id, LEASE_TAG, lease.text())


def test_a_live_lease_of_another_machine_refuses_a_resume_until_forced(tmp_path: Path):
    uri, run_id = _killed_study(tmp_path, trials=6, finished=2)
    _foreign_lease(uri, run_id, expires_in=600)
    refused = run_cli("run", "--resume", run_id, "--quiet", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == refused.stderr.strip().splitlines()[0]
    assert "is being run by process 4242 on build-node-7" in refused.stderr and "--force" in refused.stderr
    forced = run_cli("run", "--resume", run_id, "--force", "--json", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["trials"]["complete"] == 6
    assert LEASE_TAG not in MlflowClient(uri).get_run(run_id).data.tags  # given up at the end


def test_an_expired_lease_is_taken_over(tmp_path: Path):
    uri, run_id = _killed_study(tmp_path, trials=6, finished=2)
    _foreign_lease(uri, run_id, expires_in=-1)
    resumed = run_cli("run", "--resume", run_id, "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["trials"]["complete"] == 6


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_leave_nothing_running(tmp_path: Path, signum: int):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = start_cli("run", *SLOW_BRANIN, "--trials", "400", "--workers", "2", cwd=tmp_path)
    try:
        run_id = wait_for_finished_children(proc, uri, 2)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    assert f"continue with: hpt run --resume {run_id}" in err
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "KILLED"
    assert all(r.info.status != "RUNNING" for r in child_runs(uri, run_id))


def test_a_second_ctrl_c_while_stopping_leaves_nothing_running(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = start_cli("run", *SLOW_BRANIN, "--trials", "400", "--workers", "2", cwd=tmp_path)
    try:
        run_id = wait_for_finished_children(proc, uri, 2)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
    assert all(r.info.status != "RUNNING" for r in child_runs(uri, run_id))


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_store_that_cannot_be_written_stops_the_study_before_it_starts(tmp_path: Path):
    result = subprocess.run(
        [str(BIN / "hpt"), "run", "--backend", "function", "--function", "branin", "--trials", "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(4096),  # no room for SQLite's rollback journal: no write can commit
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: cannot write the MLflow store") and "disk is full" in result.stderr


def test_a_store_that_fills_up_mid_study_keeps_the_trials_in_the_journal_for_hpt_sync(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    size = (tmp_path / "mlflow.db").stat().st_size
    result = subprocess.run(
        [str(BIN / "hpt"), "run", "--backend", "function", "--function", "branin", "--trials", "60", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=_file_size_limit(size + 120_000),  # room for the study's run and a few trials
        env={**os.environ, "HPT_SYNC_GRACE": "1"},
        timeout=180,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: the tracking store") and "hpt sync" in lines[0]
    run_id = lines[0].rsplit(" ", 1)[-1]
    assert len(child_runs(uri, run_id)) < 60  # the disk filled up before the end

    synced = run_cli("sync", run_id, cwd=tmp_path)  # the disk has room again
    assert synced.returncode == 0, synced.stderr
    runs = child_runs(uri, run_id)
    assert sorted(int(r.data.tags["hpt.trial"]) for r in runs) == list(range(60))
    assert all(r.info.status == "FINISHED" and "objective" in r.data.metrics for r in runs)
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"


def fill_journal_disk_at_trial_3(params, ctx):
    """An objective that, at trial 3, points the journal's file at /dev/full: the disk it is on is full."""
    if ctx.number == 3:
        journal = next(o for o in STUDY if hasattr(o, "journal")).journal
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, journal._fd)
        os.close(full)
    return params["x"] ** 2


STUDY: list = []


def test_a_journal_that_cannot_be_written_stops_the_study_at_once(store: str):
    study = hpt.create_study(fill_journal_disk_at_trial_3, {"x": Float(-1, 1)}, tracking=store, seed=0)
    STUDY[:] = study.observers
    with pytest.raises(HptError, match=r"cannot write the journal in .*: the disk is full"):
        study.optimize(20)
    assert len(study.trials) == 4  # stopped at the trial whose outcome could not be kept
    runs = child_runs(store, study.tracker.parent_run_id)
    assert {int(r.data.tags["hpt.trial"]) for r in runs if r.data.tags["hpt.state"] == "complete"} == {0, 1, 2}


def test_resume_rebuilds_a_study_with_gaps_and_doubled_trials(store: str):
    study = hpt.create_study(FunctionBackend("branin"), tracking=store, seed=0, trials=8)
    study.optimize(4)
    run_id = study.tracker.parent_run_id
    client = MlflowClient(store)
    experiment = client.get_run(run_id).info.experiment_id
    runs = {int(r.data.tags["hpt.trial"]): r for r in child_runs(store, run_id)}
    client.delete_run(runs[1].info.run_id)  # a trial the store lost: a gap
    twin = client.create_run(experiment, tags=runs[2].data.tags, run_name="trial-0002")  # a trial logged twice
    client.log_batch(twin.info.run_id, params=[Param(k, v) for k, v in runs[2].data.params.items()])
    client.set_tag(run_id, "hpt.counts", json.dumps({"complete": 30}))  # counts that disagree
    client.set_terminated(run_id, "KILLED")

    resumed, remaining = hpt.resume_study(run_id, store, trials=8)
    assert remaining == 5  # trials 0, 2 and 3 are done; the lost one is run again as a new trial
    resumed.optimize(remaining)
    assert resumed.counts()["complete"] == 8
    assert MlflowClient(store).get_run(run_id).info.status == "FINISHED"


def test_json_and_quiet_print_only_what_they_promise(tmp_path: Path):
    args = ("run", "--backend", "function", "--function", "branin", "--trials", "3")
    as_json = run_cli(*args, "--json", cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["trials"]["complete"] == 3
    quiet = run_cli(*args, "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_an_unsupported_tracking_uri_is_one_line_naming_what_works(tmp_path: Path):
    result = run_cli("run", "--backend", "function", "--trials", "2", "--tracking-uri", "ftp://x", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: unsupported tracking URI 'ftp://x': use sqlite:///PATH.db, a folder path, http(s)://HOST:PORT of an "
        "MLflow server, or a database URL (postgresql://, mysql://, mssql://)"
    ]
