"""The study loop: Python API, directions, failures, Ctrl-C, ask/tell, parallel workers."""

from __future__ import annotations

import math
import os

import hpt
import pytest
from hpt import Float, HptError, Int, TrialState
from hpt.trial import INTERRUPTED
from hpt_basic.function_backend import FunctionBackend

SPACE = {"x": Float(-5, 5), "y": Int(0, 10)}


def quadratic(params):
    return (params["x"] - 1) ** 2 + (params["y"] - 3) ** 2


def test_optimize_a_plain_callable():
    study = hpt.optimize(quadratic, SPACE, strategy="random", trials=40, seed=0)
    assert len(study.trials) == 40
    assert study.counts()["complete"] == 40
    assert study.best_value == min(t.value for t in study.trials)
    assert study.best_value == quadratic(study.best_params)
    assert [t.number for t in study.trials] == list(range(40))


def test_maximize_picks_the_largest():
    study = hpt.optimize(lambda p: -quadratic(p), SPACE, strategy="random", trials=30, seed=1, direction="maximize")
    assert study.best_value == max(t.value for t in study.trials)


def test_same_seed_same_study():
    a = hpt.optimize(quadratic, SPACE, strategy="random", trials=10, seed=5)
    b = hpt.optimize(quadratic, SPACE, strategy="random", trials=10, seed=5)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_failing_and_nan_trials_are_recorded_and_the_study_goes_on():
    def flaky(params):
        if params["y"] % 3 == 0:
            raise RuntimeError("diverged")
        if params["y"] % 3 == 1:
            return math.nan
        return quadratic(params)

    study = hpt.optimize(flaky, SPACE, strategy="random", trials=30, seed=0)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert len(study.trials) == 30 and failed
    assert {t.error.split(" (at")[0] for t in failed} <= {
        "RuntimeError: diverged",
        "ValueError: the objective returned a non-finite value (nan)",
    }
    assert study.best_trial.params["y"] % 3 == 2


def test_objective_with_context_reports_steps():
    def curve(params, ctx):
        for step in range(3):
            ctx.report(step, {"loss": params["x"] ** 2 / (step + 1)})
        return params["x"] ** 2

    study = hpt.optimize(curve, SPACE, trials=3, seed=0)
    trial = study.trials[0]
    assert [s for s, _ in trial.intermediate] == [0, 1, 2]
    assert trial.intermediate[2][1]["loss"] == pytest.approx(trial.value / 3)


def test_max_failures_stops_with_the_last_error():
    def broken(params):
        raise ValueError(f"bad x {params['x']:.2f}")

    with pytest.raises(HptError, match="stopped after 3 failed trials; last error: ValueError: bad x"):
        hpt.optimize(broken, SPACE, strategy="random", trials=20, seed=0, max_failures=3)


def test_ctrl_c_keeps_finished_trials():
    calls = []

    def interrupted_at_five(params):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return quadratic(params)

    study = hpt.create_study(interrupted_at_five, SPACE, seed=0, tracking=False)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(20)
    assert study.counts()["complete"] == 4
    assert study.trials[4].state is TrialState.FAILED and study.trials[4].error == INTERRUPTED


def test_ask_tell_for_users_own_loop():
    study = hpt.create_study(None or quadratic, SPACE, strategy="random", seed=0, tracking=False)
    for _ in range(10):
        trial = study.ask()
        assert trial.state is TrialState.RUNNING
        study.tell(trial, quadratic(trial.params))
    failed = study.ask()
    study.tell(failed, state="failed", error="out of memory")
    assert study.counts() == {"pending": 0, "running": 0, "complete": 10, "pruned": 0, "failed": 1}
    assert study.trials[-1].error == "out of memory"
    with pytest.raises(HptError, match="trial 10 is not running"):
        study.tell(failed, 1.0)
    nan_trial = study.ask()
    study.tell(nan_trial, float("nan"))
    assert nan_trial.state is TrialState.FAILED


def test_enqueued_params_run_first():
    study = hpt.create_study(quadratic, SPACE, seed=0, tracking=False)
    study.enqueue({"x": 1.0, "y": 3})
    study.optimize(3)
    assert study.trials[0].params == {"x": 1.0, "y": 3} and study.best_value == 0.0


def test_grid_strategy_is_exhausted_before_the_trial_budget():
    study = hpt.optimize(
        quadratic, {"x": Float(0, 1), "y": Int(0, 1)}, strategy="grid", trials=100, strategy_options={"resolution": 3}
    )
    assert len(study.trials) == 6


def test_multi_objective_study_keeps_a_pareto_front():
    study = hpt.optimize(FunctionBackend("zdt1"), strategy="random", trials=30, seed=0)
    front = study.pareto_front()
    assert front and all(len(t.values) == 2 for t in front)
    for t in front:
        assert not any(hpt.trial.dominates(o.values, t.values, study.directions) for o in study.trials if o.values)


def test_single_objective_strategy_rejects_several_objectives():
    from hpt.strategy import Strategy

    class OneObjective(Strategy):
        name = "one"

        def ask(self, n=1):
            return []

    with pytest.raises(HptError, match="strategy 'one' optimises one objective"):
        hpt.create_study(
            FunctionBackend("zdt1"), strategy=OneObjective(FunctionBackend("zdt1").default_space()), tracking=False
        )


def worker_pid(params):
    """Module-level so process workers can import it."""
    return float(os.getpid()) + 0 * params["x"]


def test_process_workers_run_trials_in_other_processes():
    study = hpt.optimize(worker_pid, SPACE, trials=8, seed=0, workers=2)
    pids = {t.value for t in study.trials}
    assert len(study.trials) == 8 and study.counts()["complete"] == 8
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert len({repr(t.params) for t in study.trials}) == 8


def crash_on_big_y(params):
    if params["y"] > 7:
        os._exit(3)  # a worker that dies (segfault, OOM kill) rather than raising
    return quadratic(params)


def test_a_dead_worker_fails_its_trial_and_the_study_goes_on():
    study = hpt.optimize(crash_on_big_y, SPACE, strategy="random", trials=12, seed=0, workers=2)
    assert len(study.trials) == 12
    dead = [t for t in study.trials if t.state is TrialState.FAILED]
    assert dead and all("worker process died" in t.error for t in dead)
    assert study.counts()["complete"] >= 1


class RecordingBatches(FunctionBackend):
    """Evaluates batches itself and remembers their sizes; a member with x1 > 9 fails alone."""

    def __init__(self):
        super().__init__("branin")
        self.batches = []

    def evaluate_batch(self, params, budgets, ctxs):
        self.batches.append(len(params))
        return [
            ValueError("too far") if p["x1"] > 9 else self.evaluate(p, b, c)
            for p, b, c in zip(params, budgets, ctxs, strict=True)
        ]


def test_batch_trials_hand_whole_batches_to_the_backend():
    backend = RecordingBatches()
    study = hpt.create_study(backend, seed=0, tracking=False, batch_trials=4)
    study.optimize(10)
    assert backend.batches == [4, 4, 2]
    assert len(study.trials) == 10
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert all(t.params["x1"] > 9 and t.error.startswith("ValueError: too far") for t in failed)
    assert all(t.state is TrialState.COMPLETE for t in study.trials if t.params["x1"] <= 9)


def test_batches_run_in_worker_processes_with_the_default_batch_evaluation():
    study = hpt.optimize(worker_pid, SPACE, trials=8, seed=0, workers=2, batch_trials=3)
    assert study.counts()["complete"] == 8
    batches = [study.trials[0:3], study.trials[3:6], study.trials[6:8]]
    for batch in batches:  # a batch is evaluated by one worker, in one process
        assert len({t.value for t in batch}) == 1
    assert os.getpid() not in {t.value for t in study.trials}
