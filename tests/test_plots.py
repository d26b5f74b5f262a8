"""Per-study figures: what each shows, and the files `save_study_plots` writes."""

from __future__ import annotations

import math
from pathlib import Path

import hpt
import numpy as np
from hpt.trial import Trial, TrialState
from hpt_reports.plots import best_so_far, learning_curves, parallel_coordinates, save_study_plots, study_figures

PNG = b"\x89PNG\r\n\x1a\n"


def _curve_objective(params, ctx):
    """A fake training run: a loss that falls towards (x - 1)^2 over five epochs."""
    final = (params["x"] - 1.0) ** 2
    for epoch in range(5):
        ctx.report(epoch, {"valid_loss": final + 1.0 / (epoch + 1)})
    return final


def test_function_study_writes_history_parallel_coordinates_and_slices(tmp_path: Path):
    study = hpt.optimize("function", strategy="random", trials=25, seed=0, backend_options={"function": "branin"})
    paths = save_study_plots(study, tmp_path / "plots")
    assert [p.name for p in paths] == ["history.png", "parallel_coordinates.png", "slices.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    figures = study_figures(study)
    assert study.name in figures["history"].axes[0].get_title()
    assert study.name in figures["parallel_coordinates"].axes[0].get_title()
    assert study.name in figures["slices"].get_suptitle()
    assert [ax.get_xlabel() for ax in figures["slices"].axes] == ["x1", "x2"]
    best_line = figures["history"].axes[0].lines[0]
    assert best_line.get_ydata()[-1] == study.best_value


def test_learning_curves_show_the_best_trials_best_first():
    study = hpt.optimize(_curve_objective, {"x": hpt.Float(-3, 3)}, strategy="random", trials=8, seed=1)
    figure = learning_curves(study, top=3)
    ranked = sorted(study.trials, key=lambda t: t.value)[:3]
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.lines] == [f"trial {t.number} ({t.value:.4g})" for t in ranked]
    assert list(ax.lines[0].get_xdata()) == [0, 1, 2, 3, 4]
    assert ax.get_ylabel() == "valid_loss"
    assert study.name in ax.get_title()


def test_no_learning_curves_without_reports():
    study = hpt.optimize(lambda p: p["x"] ** 2, {"x": hpt.Float(-1, 1)}, trials=3, seed=0)
    assert learning_curves(study) is None


def test_parallel_coordinates_leave_inactive_parameters_out_of_a_line():
    space = hpt.Space(
        {
            "optimizer": hpt.Categorical(["sgd", "momentum"]),
            "momentum": hpt.Float(0.5, 0.99, when={"optimizer": ["momentum"]}),
            "lr": hpt.Float(1e-4, 1e-1, log=True),
        }
    )
    study = hpt.optimize(lambda p: math.log10(p["lr"]) ** 2, space, strategy="random", trials=12, seed=0)
    ax = parallel_coordinates(study).axes[0]
    lines = ax.lines[: len(study.trials)]
    momentum_axis = list(study.space.tunable_names).index("momentum")
    by_optimizer = {t.params["optimizer"] for t in study.trials}
    assert by_optimizer == {"sgd", "momentum"}
    sgd_lines = [ln for ln in lines if np.isnan(ln.get_ydata()[momentum_axis])]
    assert len(sgd_lines) == sum(t.params["optimizer"] == "sgd" for t in study.trials)
    best = max(lines, key=lambda ln: ln.get_linewidth())
    assert best.get_ydata()[-1] == 0.0  # the objective axis runs from the best (minimum) value up


def test_two_objectives_add_a_pareto_front(tmp_path: Path):
    study = hpt.optimize(
        "function", strategy="random", trials=15, seed=0, backend_options={"function": "zdt1", "dim": 3}
    )
    names = [p.name for p in save_study_plots(study, tmp_path)]
    assert "pareto_front.png" in names


def test_a_study_without_complete_trials_writes_nothing(tmp_path: Path):
    def broken(params):
        raise RuntimeError("diverged")

    study = hpt.optimize(broken, {"x": hpt.Float(0, 1)}, trials=2, seed=0)
    assert save_study_plots(study, tmp_path / "none") == []
    assert list((tmp_path / "none").iterdir()) == []


def test_best_so_far_prefers_the_largest_budget_like_the_study():
    trials = [
        Trial(0, {}, budget=1, state=TrialState.COMPLETE, values=[1.0]),
        Trial(1, {}, budget=3, state=TrialState.COMPLETE, values=[5.0]),
        Trial(2, {}, budget=3, state=TrialState.FAILED),
        Trial(3, {}, budget=3, state=TrialState.COMPLETE, values=[4.0]),
        Trial(4, {}, budget=1, state=TrialState.COMPLETE, values=[0.5]),
    ]
    assert best_so_far(trials, "minimize") == [1.0, 5.0, 5.0, 4.0, 4.0]
    assert best_so_far(trials[:1] + trials[4:], "maximize") == [1.0, 1.0]


def test_plots_dir_holds_the_files_of_the_parent_runs_plots_folder(tmp_path: Path, store: str):
    """`hpt run --plots DIR` writes into DIR itself (not DIR/plots): the files the parent run holds under `plots/`."""
    from conftest import invoke_json
    from mlflow.tracking import MlflowClient

    out = invoke_json(
        "run", "--backend", "function", "--function", "branin", "--strategy", "random", "--trials", "20",
        "--tracking-uri", store, "--plots", str(tmp_path / "figures"), "--quiet",
    )  # fmt: skip
    written = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"history.png", "parallel_coordinates.png", "slices.png", "importance.png", "importance.json"} <= written
    assert all(p.is_file() for p in (tmp_path / "figures").iterdir())  # no plots/ inside
    logged = {a.path for a in MlflowClient(store).list_artifacts(out["parent_run_id"], "plots")}
    assert logged == {f"plots/{name}" for name in written}
