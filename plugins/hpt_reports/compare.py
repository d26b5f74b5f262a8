"""Compare strategies on one task: every strategy with every seed, the same budget, one table and one anytime plot.

    from hpt_reports.compare import compare
    result = compare("function", ["random", "skopt"], seeds=3, trials=20, backend_options={"function": "branin"})
    print(result.table_text())

Each study is an ordinary tracked study (a parent run with a child run per trial) tagged
`hpt.comparison=<id>`; a separate run named `compare-...` holds the table and the plot.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from hpt.config import StudyConfig
from hpt.errors import HptError
from hpt.observers import StudyObserver
from hpt.plugins import registry

from hpt_reports.commands import DEFAULT_EXPERIMENT

if TYPE_CHECKING:
    from hpt.backend import Backend
    from hpt.study import Study
    from hpt.trial import Trial
    from matplotlib.figure import Figure

COMPARISON_TAG = "hpt.comparison"
PLOT_FILE = "anytime.png"
TABLE_FILE = "comparison.json"
_TIME_POINTS = 200


@dataclass
class StudyOutcome:
    """One strategy with one seed: its best value, wall time, counts and best-so-far curve."""

    strategy: str
    seed: int
    study: str
    run_id: str | None
    best_value: float | None
    seconds: float
    trials: int
    failures: int
    curve: list[tuple[float, int, float | None]] = field(default_factory=list)
    """(seconds since the start, evaluations finished, best value so far) after each evaluation."""


@dataclass
class Comparison:
    """Everything a comparison produced."""

    id: str
    task: str
    metric: str
    direction: str
    trials: int
    outcomes: list[StudyOutcome]
    tracking_uri: str | None = None
    experiment: str | None = None
    run_id: str | None = None
    plot: Path | None = None

    def rows(self) -> list[dict[str, Any]]:
        """Per strategy, best first: median and interquartile range of the best value and the time,
        median trial count and the failed trials summed over seeds."""
        out = []
        for strategy in dict.fromkeys(o.strategy for o in self.outcomes):
            mine = [o for o in self.outcomes if o.strategy == strategy]
            bests = [o.best_value for o in mine if o.best_value is not None]
            best_q = np.percentile(bests, [50, 25, 75]).tolist() if bests else [None] * 3
            time_q = np.percentile([o.seconds for o in mine], [50, 25, 75]).tolist()
            out.append(
                {
                    "strategy": strategy,
                    "studies": len(mine),
                    "best_median": best_q[0],
                    "best_q25": best_q[1],
                    "best_q75": best_q[2],
                    "seconds_median": time_q[0],
                    "seconds_q25": time_q[1],
                    "seconds_q75": time_q[2],
                    "trials_median": float(np.median([o.trials for o in mine])),
                    "failures": sum(o.failures for o in mine),
                }
            )
        sign = 1.0 if self.direction == "minimize" else -1.0
        return sorted(out, key=lambda r: np.inf if r["best_median"] is None else sign * r["best_median"])

    def table_text(self) -> str:
        """The rows as an aligned text table."""
        head = ["strategy", f"best {self.metric} median [IQR]", "time s median [IQR]", "trials", "failed"]
        body = [
            [
                r["strategy"],
                "-"
                if r["best_median"] is None
                else f"{_g(r['best_median'])} [{_g(r['best_q25'])}, {_g(r['best_q75'])}]",
                f"{r['seconds_median']:.1f} [{r['seconds_q25']:.1f}, {r['seconds_q75']:.1f}]",
                f"{r['trials_median']:g}",
                str(r["failures"]),
            ]
            for r in self.rows()
        ]
        widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in [head, *body]
        ]
        seeds = len({o.seed for o in self.outcomes})
        title = (
            f"{self.task}: {self.direction} {self.metric}, {self.trials} trials x {seeds} seeds (comparison {self.id})"
        )
        return "\n".join([title, *lines])

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparison": self.id,
            "task": self.task,
            "metric": self.metric,
            "direction": self.direction,
            "trials": self.trials,
            "tracking_uri": self.tracking_uri,
            "experiment": self.experiment,
            "run_id": self.run_id,
            "plot": str(self.plot) if self.plot else None,
            "rows": self.rows(),
            "studies": [asdict(o) for o in self.outcomes],
        }


def new_comparison_id() -> str:
    """A short random id that tags one comparison's runs."""
    return uuid.uuid4().hex[:8]


def _g(value: float) -> str:
    return f"{value:.4g}"


class _AnytimeRecorder(StudyObserver):
    """Records the study's best value after every finished evaluation, with the elapsed wall time."""

    def __init__(self) -> None:
        self.start = 0.0
        self.end = 0.0
        self.curve: list[tuple[float, int, float | None]] = []

    def study_started(self, study: Study) -> None:
        self.start = time.perf_counter()

    def trial_finished(self, study: Study, trial: Trial) -> None:
        self.curve.append((time.perf_counter() - self.start, len(self.curve) + 1, study.best_value))

    def study_finished(self, study: Study, status: str) -> None:
        self.end = time.perf_counter()


def _check_strategies(strategies: Sequence[str]) -> None:
    """Fail before any study runs when a strategy is unknown or its library is missing."""
    if not strategies:
        raise HptError("no strategy to compare: pass --strategies random,skopt,...")
    for name in strategies:
        entry = registry().get("strategy", name)
        if entry.missing():
            raise HptError(f"strategy {name!r} needs {', '.join(entry.missing())}: {entry.install_hint()}")


def scoped_options(options: Mapping[str, Any], strategies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Strategy options for each compared strategy: `grid.resolution` goes to grid only, a bare `eta` to
    every compared strategy that declares an option of that name (one clear line when none does)."""
    out: dict[str, dict[str, Any]] = {name: {} for name in strategies}
    for key, value in options.items():
        name, dot, option = key.rpartition(".")
        if dot:
            if name not in out:
                raise HptError(
                    f"option {key}: {name!r} is not one of the compared strategies ({', '.join(strategies)})"
                )
            out[name][option] = value
            continue
        takers = [s for s in strategies if option in {o.name for o in registry().get("strategy", s).options()}]
        if not takers:
            raise HptError(f"option {key}: none of the compared strategies ({', '.join(strategies)}) takes it")
        for name in takers:
            out[name][option] = value
    return out


def compare(
    objective: Backend | Callable[..., Any] | str | None = None,
    strategies: Sequence[str] = ("random", "skopt", "hyperband"),
    *,
    seeds: int | Sequence[int] = 5,
    trials: int = 30,
    space: Any = None,
    config: StudyConfig | None = None,
    strategy_options: Mapping[str, Any] | None = None,
    tracking: bool | str = True,
    plots: str | Path | None = None,
    on_study: Callable[[StudyOutcome, int, int], None] | None = None,
    comparison_id: str | None = None,
    **settings: Any,
) -> Comparison:
    """Run every strategy with every seed on the same task and budget, and summarise.

    `objective` is a backend name, a Backend or a callable (then `space` is required; None: the
    configured or default backend); the backend is built once and shared by every study, so every
    strategy sees the same data and split. `config` and `settings` are the studies' common settings
    (a `StudyConfig` and/or its fields: `backend_options`, `overrides`, `workers`, `timeout`, ...;
    `experiment` defaults to `hpt-compare`). `strategy_options` are keyed `strategy.option` for one
    strategy or `option` for every strategy that declares it (`{"grid.resolution": 3, "eta": 2}`).
    `seeds` is a count (seeds 0..n-1) or a list. With tracking, each study is a parent run tagged
    `hpt.comparison=<id>`, and a `compare-...` run holds the table and the plot. `plots` is a directory
    for the anytime plot and the table (a temporary one when None). `on_study(outcome, index, total)` is
    called after each study (progress reports). `comparison_id` names the comparison (a random
    8-character id by default).
    """
    from hpt.api import create_study, make_backend
    from hpt.space import as_space

    strategies = list(strategies)
    _check_strategies(strategies)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise HptError("no seed to compare with: pass --seeds 1 or more")
    if isinstance(tracking, str):
        settings["tracking_uri"] = tracking
    base = (config or StudyConfig(experiment=DEFAULT_EXPERIMENT)).replace(trials=trials, **settings)
    per_strategy = scoped_options(strategy_options or {}, strategies)
    if objective is None or isinstance(objective, str):
        objective = objective or base.backend or registry().default_name("backend")
    backend = make_backend(objective, as_space(space), **base.backend_options)
    if len(backend.directions) > 1:
        raise HptError(f"compare needs one objective; backend {backend.describe()!r} has {len(backend.directions)}")
    cid = comparison_id or new_comparison_id()
    task = backend.describe()
    result = Comparison(cid, task, backend.metric, backend.direction, trials, [], experiment=base.experiment)
    tracker_client, run_id = _start_run(tracking and base, cid, task, strategies, seed_list, trials)
    if tracker_client is not None:
        result.tracking_uri, result.run_id = tracker_client.tracking_uri, run_id
    total = len(strategies) * len(seed_list)
    status = "FAILED"
    try:
        for strategy in strategies:
            for seed in seed_list:
                recorder = _AnytimeRecorder()
                study = create_study(
                    backend,
                    space,
                    config=base.replace(
                        strategy=strategy,
                        strategy_options={**base.strategy_options, **per_strategy[strategy]},
                        seed=seed,
                        name=f"{strategy}-{task}-seed{seed}-{cid}",
                        tags={**base.tags, COMPARISON_TAG: cid},
                    ),
                    tracking=bool(tracking),
                    observers=[recorder],
                )
                study.optimize(trials, base.timeout)
                outcome = _outcome(study, strategy, seed, recorder)
                result.outcomes.append(outcome)
                if on_study:
                    on_study(outcome, len(result.outcomes), total)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _finish(result, tracker_client, plots, status)
    return result


def _outcome(study: Study, strategy: str, seed: int, recorder: _AnytimeRecorder) -> StudyOutcome:
    tracker = study.tracker
    counts = study.counts()
    return StudyOutcome(
        strategy=strategy,
        seed=seed,
        study=study.name,
        run_id=tracker.parent_run_id if tracker else None,
        best_value=study.best_value,
        seconds=recorder.end - recorder.start,
        trials=len(study.trials),
        failures=counts["failed"],
        curve=recorder.curve,
    )


def _start_run(
    config: StudyConfig | bool, cid: str, task: str, strategies: list[str], seeds: list[int], trials: int
) -> tuple[Any, str | None]:
    """The comparison's own run (table and plot go there), or (None, None) without tracking."""
    if not isinstance(config, StudyConfig):
        return None, None
    from hpt.tracking import make_client

    client = make_client(config.tracking_uri)
    exp = client.get_experiment_by_name(config.experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(config.experiment)
    run = client.create_run(
        exp_id,
        run_name=f"compare-{task}-{cid}",
        tags={COMPARISON_TAG: cid, "hpt.kind": "comparison", "hpt.task": task, "hpt.strategies": ",".join(strategies)},
    )
    for key, value in {"strategies": ",".join(strategies), "seeds": len(seeds), "trials": trials}.items():
        client.log_param(run.info.run_id, key, value)
    return client, run.info.run_id


def _finish(result: Comparison, client: Any, plots: str | Path | None, status: str) -> None:
    """Write the plot and the table (to `plots` or a temporary directory) and log them to the comparison run."""
    with tempfile.TemporaryDirectory(prefix="hpt-compare-") as tmp:
        directory = Path(plots) if plots is not None else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        if result.outcomes:
            result.plot = directory / PLOT_FILE
            anytime_figure(result).savefig(result.plot)
            (directory / TABLE_FILE).write_text(json.dumps(result.to_dict(), indent=2, default=str))
        if client is None or result.run_id is None:
            if plots is None:
                result.plot = None
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{r['strategy']}.best_median", r["best_median"], now, 0)
            for r in result.rows()
            if r["best_median"] is not None
        ]
        client.log_batch(result.run_id, metrics=metrics)
        if result.outcomes:
            client.log_artifact(result.run_id, str(result.plot))
            client.log_artifact(result.run_id, str(directory / TABLE_FILE))
            client.log_text(result.run_id, result.table_text() + "\n", "comparison.txt")
        client.set_terminated(result.run_id, status)
        if plots is None:
            result.plot = None


def _curves_on(grid: np.ndarray, xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    """Step functions (value after each x) sampled on `grid`; NaN before the first value, the last value after."""
    out = np.full((len(xs), len(grid)), np.nan)
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if len(x):
            idx = np.searchsorted(x, grid, side="right") - 1
            out[i] = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
    return out


def _band(ax: Any, grid: np.ndarray, curves: np.ndarray, label: str, color: Any) -> None:
    """Median line and IQR band over seeds, drawn only where every seed has a value: a median over the
    seeds that happen to have started would jump up when a slower seed joins."""
    q25, median, q75 = np.percentile(curves, [25, 50, 75], axis=0)
    ax.plot(grid, median, color=color, linewidth=2, label=label, drawstyle="steps-post")
    ax.fill_between(grid, q25, q75, color=color, alpha=0.2, step="post")


def anytime_figure(result: Comparison) -> Figure:
    """Best value so far against evaluations and against wall time: per strategy the median over
    seeds as a line and the interquartile range as a band."""
    from hpt_reports.plots import new_figure

    fig = new_figure(13, 5)
    from matplotlib import colormaps

    by_trials, by_time = fig.subplots(1, 2)
    colors = colormaps["tab10"]
    strategies = list(dict.fromkeys(o.strategy for o in result.outcomes))
    longest = max((len(o.curve) for o in result.outcomes), default=1)
    slowest = max((o.seconds for o in result.outcomes), default=1.0) or 1.0
    eval_grid = np.arange(1, longest + 1, dtype=float)
    first = min((o.curve[0][0] for o in result.outcomes if o.curve), default=slowest / 100) or slowest / 100
    time_grid = np.geomspace(first, max(slowest, first * 1.01), _TIME_POINTS)  # strategies' costs differ 10x and more
    shown: list[np.ndarray] = []
    for i, strategy in enumerate(strategies):
        runs = [[p for p in o.curve if p[2] is not None] for o in result.outcomes if o.strategy == strategy]
        values = [np.array([p[2] for p in run], dtype=float) for run in runs]
        evals = _curves_on(eval_grid, [np.array([p[1] for p in run], dtype=float) for run in runs], values)
        times = _curves_on(time_grid, [np.array([p[0] for p in run], dtype=float) for run in runs], values)
        label = f"{strategy} ({len(runs)} seeds)"
        _band(by_trials, eval_grid, evals, label, colors(i % 10))
        _band(by_time, time_grid, times, label, colors(i % 10))
        shown.append(evals)
    by_trials.set(xlabel="evaluations finished", ylabel=f"best {result.metric} so far")
    by_time.set(xscale="log", xlabel="wall time (s, log scale)", ylabel=f"best {result.metric} so far")
    for ax in (by_trials, by_time):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        _zoom(ax, shown, result.direction)
    seeds = len({o.seed for o in result.outcomes})
    fig.suptitle(
        f"{result.task}: best {result.metric} so far ({result.direction}), median and IQR over {seeds} seeds "
        f"- comparison {result.id}"
    )
    return fig


def _zoom(ax: Any, curves: list[np.ndarray], direction: str) -> None:
    """Leave the first poor values of every curve partly out of view so the end of the race is readable."""
    values = np.concatenate([c[np.isfinite(c)] for c in curves]) if curves else np.array([])
    if values.size < 2:
        return
    lo, hi = (
        (values.min(), np.percentile(values, 90))
        if direction == "minimize"
        else (np.percentile(values, 10), values.max())
    )
    if hi > lo:
        pad = 0.08 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)


__all__ = ["COMPARISON_TAG", "Comparison", "StudyOutcome", "anytime_figure", "compare", "new_comparison_id"]
