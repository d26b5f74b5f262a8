"""The `command` backend on real scripts: each is written to the test's directory and run for real, in
a process of its own, reporting in each of the three ways (a final line, a learning curve on stdout,
MLflow); pruning, budgets with checkpoints, failures and timeouts stop or fail what they should."""

from __future__ import annotations

import json
import pickle
import shlex
import sys
import textwrap
import time
from pathlib import Path

import hpt
import pytest
from hpt import TrialState
from hpt.backend import TrialContext, TrialPruned
from hpt.errors import HptError
from hpt.plugins import registry
from hpt_command.backend import CommandBackend, ScriptFailed
from hpt_command.reporting import StdoutReports, parse_line
from hpt_command.template import CommandTemplate

PY = sys.executable
SPACE = {"x": hpt.Float(-2.0, 2.0), "n": hpt.Int(1, 3)}


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], within: float = 20.0) -> list[int]:
    """The pids still running after waiting up to `within` seconds for them to end."""
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


QUADRATIC = """
    import argparse, json
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float)
    p.add_argument("--n", type=int)
    a = p.parse_args()
    print("training...")  # ordinary output is left alone
    print(json.dumps({"val_loss": (a.x - 1) ** 2 + a.n, "other": 7}))
"""


def test_a_final_json_line_is_the_objective(tmp_path: Path):
    train = script(tmp_path, "train.py", QUADRATIC)
    backend = CommandBackend(command=f"{PY} {train} --x {{x}} --n {{n}}", metric="val_loss")
    study = hpt.optimize(backend, SPACE, strategy="random", trials=4, seed=0)
    assert study.counts()["complete"] == 4
    for trial in study.trials:
        assert trial.value == pytest.approx((trial.params["x"] - 1) ** 2 + trial.params["n"])
        assert trial.metrics["other"] == 7


def test_key_value_lines_and_maximize(tmp_path: Path):
    train = script(tmp_path, "train.py", 'import sys\nx = float(sys.argv[1])\nprint(f"accuracy={1 - x * x}")\n')
    backend = CommandBackend(command=f"{PY} {train} {{x}}", metric="accuracy", direction="maximize")
    study = hpt.optimize(backend, {"x": hpt.Float(-1.0, 1.0)}, strategy="random", trials=5, seed=1)
    assert study.directions == ("maximize",)
    assert study.best_value == max(1 - t.params["x"] ** 2 for t in study.trials)


def test_parameters_reach_the_script_quoted_and_as_environment_variables(tmp_path: Path):
    train = script(
        tmp_path,
        "train.py",
        """
        import json, os, sys
        seen = {"argv": sys.argv[1:], "file": json.load(open(os.environ["HPT_PARAMS_FILE"])),
                "env": {k: v for k, v in os.environ.items() if k.startswith("HPT_")}}
        json.dump(seen, open(os.environ["HPT_PARAM_NAME"] + ".json", "w"))
        print(json.dumps({"loss": 0.5}))
        """,
    )
    backend = CommandBackend(
        command=f"{PY} {train} {{opt}} --trial={{trial}} --budget {{budget}} --ckpt {{checkpoint_dir}} {{args}}",
        metric="loss",
        cwd=str(tmp_path),
    )
    params = {"opt": "adam; rm -rf /", "name": "seen", "lr": 0.001}
    ckpt = tmp_path / "ckpt" / "trial-0003"
    backend.evaluate(params, 3.0, TrialContext(3, budget=3.0, seed=7, checkpoint_dir=ckpt))
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["argv"] == [
        "adam; rm -rf /", "--trial=3", "--budget", "3", "--ckpt", str(ckpt),
        "--opt=adam; rm -rf /", "--name=seen", "--lr=0.001",
    ]  # fmt: skip
    assert seen["file"] == params
    env = seen["env"]
    assert env["HPT_PARAM_OPT"] == "adam; rm -rf /" and env["HPT_PARAM_LR"] == "0.001"
    assert (env["HPT_TRIAL"], env["HPT_SEED"], env["HPT_BUDGET"]) == ("3", "7", "3")
    assert env["HPT_CHECKPOINT_DIR"] == str(ckpt) and ckpt.is_dir()


def test_a_learning_curve_is_forwarded_and_best_or_last_is_the_objective(tmp_path: Path):
    train = script(
        tmp_path,
        "train.py",
        """
        import json
        for step, loss in enumerate([0.9, 0.4, 0.6]):
            print(json.dumps({"step": step, "val_loss": loss, "train_loss": loss / 2}))
        """,
    )
    ctx = TrialContext(0)
    last = CommandBackend(command=f"{PY} {train}", metric="val_loss").evaluate({}, None, ctx)
    assert last.value == 0.6 and last.metrics == {}
    assert ctx.reports == [(0, {"val_loss": 0.9, "train_loss": 0.45}), (1, {"val_loss": 0.4, "train_loss": 0.2}),
                           (2, {"val_loss": 0.6, "train_loss": 0.3})]  # fmt: skip
    best = CommandBackend(command=f"{PY} {train}", metric="val_loss", objective="best")
    assert best.evaluate({}, None, TrialContext(0)).value == 0.4


def test_a_script_that_fails_is_a_failed_trial_with_the_end_of_its_stderr(tmp_path: Path):
    train = script(
        tmp_path,
        "train.py",
        """
        import sys
        for i in range(100):
            print(f"noise {i}", file=sys.stderr)
        raise SystemExit("CUDA out of memory (pretend)")
        """,
    )
    backend = CommandBackend(command=f"{PY} {train}", metric="val_loss")
    with pytest.raises(ScriptFailed) as failed:
        backend.evaluate({}, None, TrialContext(0))
    message = str(failed.value)
    assert "exited with status 1" in message and "CUDA out of memory (pretend)" in message
    assert "noise 99" in message and "noise 10\n" not in message
    study = hpt.optimize(backend, SPACE, strategy="random", trials=2, seed=0)
    assert [t.state for t in study.trials] == [TrialState.FAILED] * 2
    assert "CUDA out of memory (pretend)" in study.trials[0].error


def test_a_script_that_reports_nothing_is_a_failed_trial_naming_the_metric_and_the_ways(tmp_path: Path):
    train = script(tmp_path, "train.py", 'print("done, loss 0.3")\n')
    study = hpt.optimize(CommandBackend(command=f"{PY} {train}", metric="val_loss"), SPACE, strategy="random", trials=1)
    error = study.trials[0].error
    assert study.trials[0].state is TrialState.FAILED
    assert "reported no 'val_loss'" in error and '{"val_loss": 0.12}' in error and "val_loss=0.12" in error
    assert "mlflow.log_metric" in error and "tracked study" in error


def test_pruning_stops_the_script_and_everything_it_started(tmp_path: Path):
    train = script(
        tmp_path,
        "train.py",
        """
        import json, os, subprocess, time
        child = subprocess.Popen(["sleep", "120"])
        json.dump([os.getpid(), child.pid], open("pids.json", "w"))
        for step in range(1000):
            print(json.dumps({"step": step, "val_loss": 1.0 / (step + 1)}))
            time.sleep(0.05)
        """,
    )
    backend = CommandBackend(command=f"{PY} {train}", metric="val_loss", grace=1, cwd=str(tmp_path))
    ctx = TrialContext(0, stop_rule=lambda step, metrics: step >= 3)
    with pytest.raises(TrialPruned):
        backend.evaluate({}, None, ctx)
    assert [step for step, _ in ctx.reports] == [0, 1, 2, 3] and ctx.reports[-1][1]["val_loss"] == 0.25
    assert wait_gone(json.loads((tmp_path / "pids.json").read_text())) == []


def test_bad_commands_and_options_are_one_clear_line(tmp_path: Path):
    with pytest.raises(HptError, match="needs --command"):
        CommandBackend(metric="loss")
    with pytest.raises(HptError, match="needs --metric"):
        CommandBackend(command="true")
    with pytest.raises(HptError, match="placeholder {x.y} is not a name"):
        CommandBackend(command="python t.py {x.y}", metric="loss")
    with pytest.raises(HptError, match="literal brace"):
        CommandBackend(command="python t.py {x", metric="loss")
    backend = CommandBackend(command="python t.py --lr {lr} --epochs {budget}", metric="loss")
    with pytest.raises(HptError, match=r"uses \{lr\}, which is no parameter of this trial.*\{x\}"):
        backend.evaluate({"x": 1.0}, 3, TrialContext(0))
    with pytest.raises(HptError, match="gives trials no budget: use a multi-fidelity strategy"):
        backend.evaluate({"lr": 1.0}, None, TrialContext(0))
    with pytest.raises(HptError, match="--space FILE"):
        backend.default_space()


def test_template_formats_escapes_and_quotes():
    template = CommandTemplate("echo ${{HOME}} {lr:.2e} {name!r} {path}")
    assert template.fields == {"lr", "name", "path"}
    rendered = template.render({"lr": 0.000123, "name": "a b", "path": "it's"})
    assert shlex.split(rendered) == ["echo", "${HOME}", "1.23e-04", "'a b'", "it's"]


def test_report_lines():
    assert parse_line('{"val_loss": 0.1, "name": "x", "ok": true}').metrics == {"val_loss": 0.1}
    assert parse_line('{"epoch": 4, "acc": 1}') == parse_line("epoch=4, acc=1")
    assert parse_line("epoch=4 acc=1").step == 4
    assert parse_line("loss=nan").metrics["loss"] != parse_line("loss=nan").metrics["loss"]
    for line in ("loss 0.3", "lr=0.1 is good", "[1, 2]", '{"name": "x"}', "{not json}", "a=1 b=x", ""):
        assert parse_line(line) is None, line
    reports = StdoutReports("loss")
    for line in ('{"step": 0, "loss": 2}', "ignored", "loss=1.5", '{"step": 1, "loss": 1}'):
        reports.add(line)
    assert reports.objective("last", "minimize") == 1.5 and reports.objective("best", "minimize") == 1
    assert reports.final_metrics() == {}


def test_the_backend_is_registered_picklable_and_rebuilt_from_its_options(tmp_path: Path):
    backend = registry().create("backend", "command", command="python t.py {x}", metric="acc", direction="maximize")
    assert isinstance(backend, CommandBackend) and backend.needs_trial_run
    assert backend.directions == ("maximize",) and backend.describe() == "command-t"
    clone = pickle.loads(pickle.dumps(backend))
    assert (
        clone.options() == backend.options() == {"command": "python t.py {x}", "metric": "acc", "direction": "maximize"}
    )
    assert CommandBackend(**backend.options()).options() == backend.options()


HANGS = """
    import json, os, subprocess, sys, time
    child = subprocess.Popen(["sleep", "120"])
    json.dump([os.getpid(), child.pid], open(f"pids-{sys.argv[1]}.json", "w"))
    time.sleep(120)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_hung_script_is_stopped_by_the_trial_timeout_with_all_it_started(tmp_path: Path, workers: int):
    train = script(tmp_path, "train.py", HANGS)
    backend = CommandBackend(command=f"{PY} {train} {{trial}}", metric="loss", grace=1, cwd=str(tmp_path))
    study = hpt.optimize(backend, SPACE, strategy="random", trials=workers, seed=0, workers=workers, trial_timeout=2)
    assert [t.state for t in study.trials] == [TrialState.FAILED] * workers
    assert all("timed out after 2 s" in t.error for t in study.trials)
    pids = [pid for path in tmp_path.glob("pids-*.json") for pid in json.loads(path.read_text())]
    assert len(pids) == 2 * workers
    assert wait_gone(pids) == []


def test_hyperband_passes_budgets_and_promoted_trials_continue_from_their_checkpoints(tmp_path: Path):
    train = script(
        tmp_path,
        "train.py",
        """
        import argparse, json, os
        p = argparse.ArgumentParser()
        p.add_argument("--x", type=float)
        p.add_argument("--epochs", type=int)
        p.add_argument("--ckpt")
        a = p.parse_args()
        state = os.path.join(a.ckpt, "state.json")
        start = json.load(open(state))["epochs"] if os.path.exists(state) else 0
        with open(os.path.join(a.ckpt, "starts.txt"), "a") as log:
            log.write(f"{start}\\n")
        for epoch in range(start, a.epochs):
            print(json.dumps({"step": epoch, "loss": (a.x - 1) ** 2 + 1 / (epoch + 1)}))
        json.dump({"epochs": a.epochs}, open(state, "w"))
        """,
    )
    backend = CommandBackend(
        command=f"{PY} {train} --x {{x}} --epochs {{budget}} --ckpt {{checkpoint_dir}}", metric="loss"
    )
    study = hpt.optimize(
        backend,
        {"x": hpt.Float(-2.0, 2.0)},
        strategy="hyperband",
        strategy_options={"min_budget": 1, "max_budget": 9, "eta": 3},
        trials=9,
        seed=0,
        checkpoint_root=str(tmp_path / "checkpoints"),
    )
    promoted = [t for t in study.trials if len(t.budget_history) > 1]
    assert promoted and all(t.state is TrialState.COMPLETE for t in study.trials)
    for trial in promoted:
        starts = (tmp_path / "checkpoints" / f"trial-{trial.number:04d}" / "starts.txt").read_text().split()
        assert [int(s) for s in starts] == [0, *map(int, trial.budget_history[:-1])]
        steps = [step for step, _ in trial.intermediate]
        assert steps == list(range(int(trial.budget_history[-1])))  # each epoch once, across its budgets


LOGS_TO_MLFLOW = """
    import json, os, sys, time
    import mlflow
    x = float(sys.argv[1])
    json.dump([os.getpid()], open(f"pids-{sys.argv[2]}.json", "w"))
    mlflow.log_param("script_param", "hello")
    mlflow.set_tag("from_script", "yes")
    print("plain output")
    print("a warning", file=sys.stderr)
    for step in range(int(sys.argv[3])):
        mlflow.log_metric("val_loss", (x - 1) ** 2 + 1 / (step + 1), step=step)
        time.sleep(float(sys.argv[4]))
"""


def test_a_script_logging_to_mlflow_writes_into_its_trials_child_run(tmp_path: Path, store: str):
    from conftest import child_runs
    from mlflow.tracking import MlflowClient

    train = script(tmp_path, "train.py", LOGS_TO_MLFLOW)
    backend = CommandBackend(command=f"{PY} {train} {{x}} {{trial}} 3 0", metric="val_loss", cwd=str(tmp_path))
    study = hpt.create_study(backend, {"x": hpt.Float(-2.0, 2.0)}, strategy="random", tracking=store, seed=0)
    study.optimize(2)
    client = MlflowClient(store)
    runs = {int(r.data.tags["hpt.trial"]): r for r in child_runs(store, study.tracker.parent_run_id)}
    assert sorted(runs) == [0, 1]
    for trial in study.trials:
        run = runs[trial.number]
        assert trial.state is TrialState.COMPLETE
        assert trial.value == pytest.approx((trial.params["x"] - 1) ** 2 + 1 / 3)  # the last value logged
        assert [step for step, _ in trial.intermediate] == [0, 1, 2]
        assert run.data.params["script_param"] == "hello" and run.data.tags["from_script"] == "yes"
        assert float(run.data.params["x"]) == pytest.approx(trial.params["x"])
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in history) == [0, 1, 2]  # what the script logged, not logged again by hpt
        logs = Path(client.download_artifacts(run.info.run_id, "logs", str(tmp_path / f"logs-{trial.number}")))
        assert "plain output" in (logs / "stdout.txt").read_text()
        assert "a warning" in (logs / "stderr.txt").read_text()


def test_pruning_on_what_the_script_logs_to_mlflow_stops_it(tmp_path: Path, store: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    train = script(tmp_path, "train.py", LOGS_TO_MLFLOW)
    backend = CommandBackend(
        command=f"{PY} {train} 1.0 0 200 0.1", metric="val_loss", cwd=str(tmp_path), poll_interval=0.2, grace=1
    )
    ctx = TrialContext(0, stop_rule=lambda step, metrics: step >= 2, run_id=run_id, tracking_uri=store)
    with pytest.raises(TrialPruned):
        backend.evaluate({}, None, ctx)
    assert [step for step, _ in ctx.reports] == [0, 1, 2]  # stopped at the first point judged, however many a poll read
    assert wait_gone(json.loads((tmp_path / "pids-0.json").read_text())) == []


class SpacedCommand(CommandBackend):
    """The command backend with a space of its own, as the backend contract wants one."""

    def default_space(self) -> hpt.Space:
        return hpt.Space(SPACE)


def test_the_backend_contract(tmp_path: Path):
    from hpt.testing import check_backend

    train = script(
        tmp_path,
        "train.py",
        """
        import json, sys
        for epoch in range(int(sys.argv[2])):
            print(json.dumps({"epoch": epoch, "val_loss": float(sys.argv[1]) ** 2 / (epoch + 1)}))
        """,
    )
    check_backend(SpacedCommand(command=f"{PY} {train} {{x}} {{budget}}", metric="val_loss"), budget=3)
