"""The `command` backend: tune your own training script, run once per trial in a fresh process.

    hpt run --backend command --command "python train.py --lr {learning_rate} --epochs {budget}" \\
        --space space.yaml --metric val_loss --direction minimize --strategy hyperband

The script reports `metric` in any of three ways (docs/own-script.md): it logs it to MLflow (in a tracked
study the trial's child run is handed to it through MLFLOW_RUN_ID), it prints a final line `{"val_loss": 0.12}`
or `val_loss=0.12`, or it prints points of its learning curve (`{"step": 3, "val_loss": 0.2}`), which are
forwarded to the study as they arrive so that pruning can stop the script early.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.errors import HptError
from hpt.space import Params, Space

from hpt_command.process import Script
from hpt_command.reporting import StdoutReports, pick
from hpt_command.template import CommandTemplate, as_args, environment
from hpt_command.trial_run import TrialRun

_OWN_VARIABLES = {"HPT_TRIAL", "HPT_SEED", "HPT_BUDGET", "HPT_CHECKPOINT_DIR", "MLFLOW_RUN_ID"}
"""Variables set per trial: never inherited from the environment hpt itself runs in."""


class ScriptFailed(Exception):
    """The script exited with a non-zero status; the message holds the last lines of its stderr."""


class CommandBackend(Backend):
    """Runs a shell command per trial, with the trial's parameters in place of its `{name}` placeholders.

    Options:
        command: the command, e.g. "python train.py --lr {learning_rate} --epochs {budget}"; placeholders are the
            space's parameters, {budget}, {checkpoint_dir}, {trial}, {seed} and {args} (all as --name=value).
        metric: the metric the script reports (printed as JSON or key=value, or logged to MLflow); the objective.
        direction: minimize or maximize the metric.
        objective: last (the final value reported) or best (the best value along the way).
        cwd: the directory the command runs in (default: where the worker runs).
        grace: seconds a stopped script (pruned, timed out) has after SIGTERM before SIGKILL.
        poll_interval: seconds between reads of the trial's MLflow run while the script runs (for pruning on
            metrics it logs there).
    """

    name = "command"
    needs_trial_run = True

    def __init__(
        self,
        command: str | None = None,
        metric: str | None = None,
        direction: Literal["minimize", "maximize"] = "minimize",
        objective: Literal["last", "best"] = "last",
        cwd: str | None = None,
        grace: float = 10.0,
        poll_interval: float = 2.0,
    ) -> None:
        if not command:
            raise HptError('the command backend needs --command, e.g. --command "python train.py --lr {learning_rate}"')
        if not metric:
            raise HptError("the command backend needs --metric NAME: the metric your script reports (e.g. val_loss)")
        if direction not in ("minimize", "maximize"):
            raise HptError(f"--direction {direction!r}: use minimize or maximize")
        if objective not in ("last", "best"):
            raise HptError(f"--objective {objective!r}: use last or best")
        if grace < 0 or not poll_interval > 0:
            raise HptError("--grace must be >= 0 and --poll-interval > 0 seconds")
        if cwd is not None and not Path(cwd).is_dir():
            raise HptError(f"--cwd {cwd!r} is not a directory")
        self.template = CommandTemplate(command)
        self.command = command
        self.metric = metric
        self.direction = direction
        self.objective = objective
        self.cwd = cwd
        self.grace = float(grace)
        self.poll_interval = float(poll_interval)

    def default_space(self) -> Space:
        raise HptError("the command backend has no space of its own: give one with --space FILE (YAML or TOML)")

    def describe(self) -> str:
        words = self.command.split()
        script = next((w for w in words if w.endswith((".py", ".sh"))), words[0])
        return f"command-{Path(script).stem}"

    def tags(self) -> dict[str, str]:
        return {"hpt.command": self.command}

    def evaluate(self, params: Params, budget: float | None, ctx: TrialContext) -> Result:
        values = self._values(params, budget, ctx)
        command = self.template.render(values)
        run = TrialRun(ctx.run_id, ctx.tracking_uri, self.metric) if ctx.run_id else None
        with tempfile.TemporaryDirectory(prefix="hpt-command-") as tmp:
            log_dir = Path(tmp)
            env = self._environment(params, values, ctx, log_dir)
            (log_dir / "logs").mkdir()
            script = Script(command, env, self.cwd, log_dir / "logs", self.grace)
            try:
                stdout = self._follow(script, run, ctx)
                status = script.wait()
            finally:
                script.close()
                if run is not None:
                    run.keep_logs(log_dir / "logs", "logs" if budget is None else f"logs/budget-{budget:g}")
            if status != 0:
                raise ScriptFailed(_failure(status, script.stderr_tail()))
        return self._result(stdout, run, ctx)

    def _values(self, params: Params, budget: float | None, ctx: TrialContext) -> dict[str, Any]:
        """What the placeholders stand for in this trial."""
        if ctx.checkpoint_dir is not None:
            Path(ctx.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        if budget is not None and float(budget).is_integer():
            budget = int(budget)
        return {
            **params,
            "budget": budget,
            "checkpoint_dir": None if ctx.checkpoint_dir is None else str(ctx.checkpoint_dir),
            "trial": ctx.number,
            "seed": ctx.seed,
            "args": as_args(params),
        }

    def _environment(self, params: Params, values: dict[str, Any], ctx: TrialContext, log_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPT_PARAM") and k not in _OWN_VARIABLES}
        env.update(environment(params, values, log_dir / "params.json"))
        env.setdefault("PYTHONUNBUFFERED", "1")  # a Python script's lines arrive as printed, not at exit
        if ctx.run_id is not None:
            env["MLFLOW_RUN_ID"] = ctx.run_id
            if ctx.tracking_uri:
                env["MLFLOW_TRACKING_URI"] = ctx.tracking_uri
        return env

    def _follow(self, script: Script, run: TrialRun | None, ctx: TrialContext) -> StdoutReports:
        """Read the script's reports as they come, forward its learning curve to the study and stop the script
        (raising TrialPruned) at the first point the study's pruning rule judges worth stopping."""
        stdout = StdoutReports(self.metric)
        next_poll = time.monotonic() + self.poll_interval
        for line in script.lines(self.poll_interval):
            points: list[tuple[int, dict[str, float], bool]] = []  # (step, metrics, logged in the run)
            if line is not None:
                report = stdout.add(line)
                if report is not None and report.step is not None:
                    points.append((report.step, report.metrics, False))
            if run is not None and not stdout.curve and time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.poll_interval
                points += [(step, {self.metric: value}, True) for step, value in run.poll()]
            for step, metrics, in_run in points:
                ctx.report(step, metrics, in_run=in_run)
                if ctx.should_stop():
                    script.stop()
                    raise TrialPruned
        return stdout

    def _result(self, stdout: StdoutReports, run: TrialRun | None, ctx: TrialContext) -> Result:
        """The objective: from stdout when the script printed the metric, else from the MLflow run."""
        value = stdout.objective(self.objective, self.direction)
        if value is not None:
            return Result(value, metrics=stdout.final_metrics())
        if run is not None:
            for step, logged in run.poll():  # the rest of what it logged, for the study's learning curves
                ctx.report(step, {self.metric: logged}, in_run=True)
            if run.new:
                values = [v for _, v in run.new] if self.objective == "last" else [v for _, v in run.earlier + run.new]
                return Result(pick(values, self.objective, self.direction))
        raise HptError(_no_metric(self.metric, run is not None))


def _failure(status: int, tail: str) -> str:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    return f"the command {how}; last lines of its stderr:\n{tail}" if tail else f"the command {how} (stderr empty)"


def _no_metric(metric: str, tracked: bool) -> str:
    ways = (
        f'the command reported no {metric!r}: print a final line {{"{metric}": 0.12}} or {metric}=0.12, '
        f'or lines with a step ({{"step": 3, "{metric}": 0.2}}), or log it with mlflow.log_metric("{metric}", ...)'
    )
    if not tracked:
        ways += " (MLflow logging reaches hpt only in a tracked study: hpt run, or tracking=True)"
    return ways


__all__ = ["CommandBackend", "ScriptFailed"]
