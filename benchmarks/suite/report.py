"""Scores, paired verdicts, the markdown table and the anytime plots of the quality suite.

- Simple regret after a budget: the true value of the point the method believes best (the lowest
  observed value so far) minus the optimum; for network-tuning tasks (optimum unknown) the loss itself.
- Bayesmark's normalised score per run: (regret - best) / (random's median regret - best), where
  best is the lowest regret any run of any method reached on the task: 0 = the best anyone found,
  1 = random search's median. Averaged over seeds, then over the tasks of a family.
- A paired verdict: Wilcoxon signed-rank over the seeds both methods ran, called at p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import wilcoxon

from suite.tasks import FAMILIES, TASKS

ALPHA = 0.05


def regret_curve(record: dict, length: int) -> np.ndarray:
    """Regret of the believed-best point after each evaluation (an exhausted method keeps its last value)."""
    task = TASKS[record["task"]]
    true = np.asarray(record["true"], dtype=float)
    observed = np.asarray(record.get("observed", record["true"]), dtype=float)
    best_at = np.array([int(np.argmin(observed[: i + 1])) for i in range(len(observed))])
    values = true[best_at]
    regret = values - task.optimum if math.isfinite(task.optimum) else values
    regret = np.maximum(regret, 0.0) if math.isfinite(task.optimum) else regret
    if len(regret) < length:
        regret = np.concatenate([regret, np.full(length - len(regret), regret[-1])])
    return regret[:length]


@dataclass
class Results:
    """Regret curves per (task, method), one per seed (as long as that run was), with the seeds they came from."""

    curves: dict[tuple[str, str], list[np.ndarray]]
    seeds: dict[tuple[str, str], list[int]]
    seconds: dict[tuple[str, str], float]

    def at(self, task: str, method: str, budget: int) -> dict[int, float]:
        key = (task, method)
        pairs = zip(self.seeds.get(key, []), self.curves.get(key, []), strict=True)
        return {seed: float(curve[budget - 1]) for seed, curve in pairs if len(curve) >= budget}

    def best(self, task: str) -> float:
        return min((float(c.min()) for (t, _), cs in self.curves.items() if t == task for c in cs), default=math.nan)

    def normalised(self, task: str, method: str, budget: int) -> dict[int, float]:
        random = list(self.at(task, "random", budget).values())
        if not random:
            return {}
        best = self.best(task)
        if not random or np.median(random) <= best:
            return {}
        scale = float(np.median(random)) - best
        return {seed: (r - best) / scale for seed, r in self.at(task, method, budget).items()}


def verdict(a: dict, b: dict) -> tuple[str, float]:
    """'<' when a is lower (better) than b with the pairs (seeds, or tasks) agreeing, '>' when higher, '='
    otherwise (or with fewer than 5 pairs), and p."""
    seeds = sorted(set(a) & set(b))
    x, y = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    if len(seeds) < 5 or np.allclose(x, y):
        return "=", 1.0
    p = float(wilcoxon(x, y, zero_method="zsplit").pvalue)
    if p >= ALPHA:
        return "=", p
    return ("<" if np.median(x - y) < 0 else ">"), p


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def task_scores(results: Results, tasks: Sequence[str], method: str, budget: int) -> dict[str, float]:
    """Per task, the method's normalised score averaged over its seeds."""
    return {t: float(np.mean(list(s.values()))) for t in tasks if (s := results.normalised(t, method, budget))}


def family_score(results: Results, tasks: Sequence[str], method: str, budget: int) -> float:
    """Mean normalised score of a method over the tasks where it ran (mean over seeds first); NaN if none."""
    scores = task_scores(results, tasks, method, budget)
    return float(np.mean(list(scores.values()))) if scores else math.nan


def markdown(
    results: Results,
    tasks: Sequence[str],
    methods: Sequence[str],
    budgets: Sequence[int],
    pairs: Sequence[tuple[str, str]],
) -> str:
    """The summary (normalised scores per family, verdicts paired by task), then per task: median [IQR]
    regret and verdicts paired by seed."""
    seeds = sorted({s for v in results.seeds.values() for s in v}) or [0]
    lines = [
        f"{len(tasks)} tasks; seeds {seeds[0]}..{seeds[-1]} where run (each row says how many); budgets "
        f"{', '.join(map(str, budgets))} trials. Mean normalised score (0 = the best any run found, 1 = random "
        "search's median; lower is better), in brackets the tasks it covers; per pair, the verdict paired by "
        "task (Wilcoxon over the tasks both ran, p < 0.05):",
        "",
    ]
    header = ["family", "trials", *methods, *[f"{a} vs {b}" for a, b in pairs]]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for family in FAMILIES:
        members = [t for t in tasks if TASKS[t].family == family]
        for budget in budgets:
            scores = {m: task_scores(results, members, m, budget) for m in methods}
            if not any(scores.values()):
                continue
            cells = [
                f"{np.mean(list(scores[m].values())):.3f} ({len(scores[m])})" if scores[m] else "-" for m in methods
            ]
            for a, b in pairs:
                sign, p = verdict(scores[a], scores[b])
                cells.append(sign if sign == "=" else f"{sign} (p={p:.3f})")
            lines.append(f"| {family} | {budget} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Median simple regret [IQR] over seeds (for network tasks: the CV or validation loss); "
        "the paired columns give `<` (first lower, Wilcoxon p < 0.05), `>` or `=`.",
        "",
    ]
    header = ["task", "trials", "seeds", *methods, *[f"{a} vs {b}" for a, b in pairs]]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for task in tasks:
        for budget in budgets:
            cells, counts = [], set()
            for method in methods:
                at = results.at(task, method, budget)
                counts.add(len(at))
                if at:
                    v = np.array(list(at.values()))
                    q1, med, q3 = np.percentile(v, [25, 50, 75])
                    cells.append(f"{_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}]")
                else:
                    cells.append("-")
            for a, b in pairs:
                sign, p = verdict(results.at(task, a, budget), results.at(task, b, budget))
                cells.append(sign if sign == "=" else f"{sign} (p={p:.3f})")
            seeds = max(counts) if counts else 0
            lines.append(f"| {task} | {budget} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: Results, tasks: Sequence[str], methods: Sequence[str], length: int, path: str) -> None:
    """Mean normalised score against trials, one panel per task family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in FAMILIES if any(TASKS[t].family == f for t in tasks)]
    fig, axes = plt.subplots(1, len(families), figsize=(5 * len(families), 3.8), squeeze=False)
    budgets = list(range(5, length + 1, 5))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}  # one colour per method everywhere
    for ax, family in zip(axes[0], families, strict=True):
        members = [t for t in tasks if TASKS[t].family == family]
        for method in methods:
            ys = [family_score(results, members, method, b) for b in budgets]
            if not np.all(np.isnan(ys)):
                ax.plot(budgets, ys, label=method, color=colours[method])
        ax.set_title(f"{family} ({len(members)} tasks)")
        ax.set_xlabel("trials")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("mean normalised score (0 best found, 1 random median)")
    handles = [plt.Line2D([], [], color=colours[m], label=m) for m in methods]
    axes[0][-1].legend(handles=handles, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
