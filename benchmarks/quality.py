"""Search-quality suite: hpt's strategies against Optuna and scikit-optimize on 28 synthetic functions and
network-tuning tasks (Bayesmark's MLP-adam / MLP-sgd, hpt's own `mlp` backend). Run by hand, never in tests.

Every (task, method, seed) run is cached in `--cache` (JSON lines), so a run resumes where the last one
stopped and grows it: more seeds, more tasks, longer runs. Runs go in priority order (seed by seed, so
every method has the first seeds before any has the last). Budgets are prefixes of one run.

    .venv/bin/python benchmarks/quality.py --quick                     # minutes: 4 functions, 3 seeds, 30 trials
    nice -n 10 .venv/bin/python benchmarks/quality.py --tasks synthetic --seeds 10 --jobs 1
    .venv/bin/python benchmarks/quality.py --tasks bayesmark --methods random,tpe,optuna-gp,skopt,auto --seeds 5
    .venv/bin/python benchmarks/quality.py --no-run --docs             # table into docs/strategies.md from the cache
    .venv/bin/python benchmarks/quality.py --ask-latency skopt,auto    # seconds per ask at 50/100/200/500 trials
    .venv/bin/python benchmarks/quality.py --tasks tuning --methods skopt,skopt:warp=false,gp_minimize --seeds 5

`--tasks` takes names or groups: synthetic (22 functions), fresh (6 more, added after `auto`'s defaults were
settled, as a second held-out check; reported as a family of their own), bbob (COCO's BBOB functions f1, f3,
f6, f7, f12, f15, f17, f20, f21, f24 in 2, 5 and 10 dimensions, instances 1 to 6, through coco-experiment;
bbob-tune: instances 1 to 3, what changes were diagnosed on; bbob-confirm: instances 4 to 6, held out;
bbob-d2, bbob-d5, bbob-d10), bayesmark, hpt-mlp, tuning (what strategies were diagnosed on), heldout (the
other 15 of the 22), all. `--match REGEX` keeps the chosen tasks whose names match. A method ending in `/bK`
asks K points at a time (`auto/b16`), the batch column. A method may carry strategy options
(`skopt:warm_after=1000000`), which makes it a method of its own in the cache and the table.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one BLAS thread per process
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from suite import bbob, functions, methods, report  # noqa: E402
from suite.store import Store, run_one  # noqa: E402
from suite.tasks import TASKS  # noqa: E402

HERE = Path(__file__).parent
DOCS = HERE.parent / "docs" / "strategies.md"
MARKERS = ("<!-- quality-suite:start -->", "<!-- quality-suite:end -->")
QUICK = {
    "tasks": "branin,hartmann3,levy_cat,conditional",
    "methods": "random,tpe,skopt,auto",
    "seeds": 3,
    "trials": 30,
    "budgets": "15,30",
}
PAIRS = (
    ("auto", "random"),
    ("auto", "tpe"),
    ("auto", "optuna-gp"),
    ("auto:model=gp", "tpe"),
    ("auto:model=gp", "optuna-gp"),
    ("skopt", "gp_minimize"),
    ("auto/b4", "auto"),
    ("auto/b16", "auto"),
)


def select_tasks(spec: str) -> list[str]:
    groups = {
        "synthetic": [t for t in functions.TASKS],
        "tuning": list(functions.TUNING),
        "heldout": [t for t in functions.TASKS if t not in functions.TUNING],
        "fresh": list(functions.FRESH_TASKS),
        "bbob": bbob.group(),
        "bbob-tune": bbob.group(instances=bbob.TUNE_INSTANCES),
        "bbob-confirm": bbob.group(instances=tuple(i for i in bbob.INSTANCES if i not in bbob.TUNE_INSTANCES)),
        **{f"bbob-d{d}": bbob.group(dims=(d,)) for d in bbob.DIMENSIONS},
        "bayesmark": [t for t, v in TASKS.items() if v.family == "bayesmark"],
        "hpt-mlp": [t for t, v in TASKS.items() if v.family == "hpt-mlp"],
        "all": list(TASKS),
    }
    chosen: list[str] = []
    for item in spec.split(","):
        for task in groups.get(item, [item]):
            if task not in TASKS:
                raise SystemExit(f"error: unknown task {task!r}")
            if task not in chosen:
                chosen.append(task)
    return chosen


def run(store: Store, tasks: list[str], names: list[str], seeds: list[int], trials: int, jobs: int) -> None:
    revisions = {m: methods.revision(m) for m in names}
    todo = [
        (t, m, trials, s, revisions[m])
        for s in seeds
        for t in tasks
        for m in names
        if store.get(t, m, s, revisions[m], trials) is None
    ]
    print(f"{len(todo)} runs to do ({len(tasks) * len(names) * len(seeds) - len(todo)} cached)", flush=True)
    started = time.perf_counter()
    if jobs == 1:
        for done, job in enumerate(todo, 1):
            _record(store, run_one(*job), done, len(todo), started)
        return
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_one, *job) for job in todo]
        for done, future in enumerate(as_completed(futures), 1):
            _record(store, future.result(), done, len(todo), started)


def _record(store: Store, record: dict, done: int, total: int, started: float) -> None:
    store.add(record)
    print(
        f"[{done}/{total} {time.perf_counter() - started:.0f}s] {record['task']} {record['method']} "
        f"seed {record['seed']}: {record['seconds']:.1f}s",
        flush=True,
    )


def load(
    store: Store,
    tasks: list[str],
    names: list[str],
    seeds: list[int],
    budgets: list[int],
    any_revision: str = "",
    pin: str = "",
) -> report.Results:
    """Every cached run covering at least the smallest budget; a budget is reported from the runs that reach it.
    Methods named in `any_revision` (or "all") also take runs of their older code where the current has none;
    `method@N` takes only their first N evaluations (where the code changed nothing before the N+1st). `pin`
    (`auto=64ae6515f6,...`) reports a strategy's runs of that revision instead of its current code's."""
    older = dict(_older(item) for item in any_revision.split(",")) if any_revision else {}
    pinned = dict(item.split("=", 1) for item in pin.split(",")) if pin else {}
    revisions = {m: pinned.get(methods.parse(m)[0]) or methods.revision(m) for m in names}

    def record(task: str, method: str, seed: int) -> dict | None:
        found = store.get(task, method, seed, revisions[method], min(budgets))
        cap = older.get(method, older.get("all", 0))
        if found is None and cap:
            found = store.get(task, method, seed, None, min(budgets))
            if found is not None and found["requested"] > cap:  # its first `cap` evaluations only
                found = {key: value[:cap] if key in ("true", "observed") else value for key, value in found.items()}
                found["requested"] = cap
        return found

    curves, seed_lists, seconds = {}, {}, {}
    for task in tasks:
        for method in names:
            rows = [(s, r) for s in seeds if (r := record(task, method, s))]
            rows = [(s, r) for s, r in rows if r["true"]]
            if rows:
                curves[task, method] = [report.regret_curve(r, min(r["requested"], max(budgets))) for _, r in rows]
                seed_lists[task, method] = [s for s, _ in rows]
                seconds[task, method] = float(np.mean([r["seconds"] for _, r in rows]))
    return report.Results(curves, seed_lists, seconds)


def _older(item: str) -> tuple[str, int]:
    """`method` (older runs serve every budget) or `method@N` (only their first N evaluations)."""
    method, _, cap = item.partition("@")
    return method, int(cap) if cap else sys.maxsize


def ask_latency(names: list[str], sizes: tuple[int, ...] = (50, 100, 200, 500), asks: int = 20) -> str:
    """Seconds for the first ask after a resume (one fit on every replayed trial), then the mean and the
    slowest of the next `asks` tell + ask steps of the running study (a strategy that refits its model's
    hyperparameters only now and then has slow steps among fast ones)."""
    from hpt.plugins import registry
    from hpt.trial import Trial, TrialState

    task = functions.TASKS["hartmann6"]
    lines = [
        f"| strategy | told trials | first ask after resume (s) | tell + ask, mean of {asks} (s) | slowest (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in names:
        for told in sizes:
            rng = np.random.default_rng(0)
            strategy = registry().create("strategy", name, task.space, seed=0)
            for number in range(told):
                params = task.space.sample(rng)
                strategy.tell(Trial(number, params, state=TrialState.COMPLETE, values=[task.true_value(params)]))
            started = time.perf_counter()
            params = strategy.ask(1)[0].params
            resumed = time.perf_counter() - started
            steps = []
            for number in range(told, told + asks):
                started = time.perf_counter()
                strategy.tell(Trial(number, params, state=TrialState.COMPLETE, values=[task.true_value(params)]))
                params = strategy.ask(1)[0].params
                steps.append(time.perf_counter() - started)
            lines.append(f"| {name} | {told} | {resumed:.2f} | {np.mean(steps):.2f} | {max(steps):.2f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def splice_docs(text: str) -> None:
    doc = DOCS.read_text()
    pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"error: {DOCS} has no {MARKERS[0]} ... {MARKERS[1]} section")
    DOCS.write_text(pattern.sub(lambda _: f"{MARKERS[0]}\n{text}{MARKERS[1]}", doc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="synthetic,fresh,bayesmark,hpt-mlp", help="task names or groups, commas")
    parser.add_argument("--match", default="", help="keep only the chosen tasks whose names match this regex")
    parser.add_argument("--methods", default=",".join(methods.DEFAULT_METHODS), help="methods, commas")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--trials", type=int, default=60, help="evaluations per run (the largest budget)")
    parser.add_argument("--budgets", default="30,60", help="budgets reported, commas")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--quick", action="store_true", help="a small subset that finishes in minutes")
    parser.add_argument("--no-run", action="store_true", help="report from the cache only")
    parser.add_argument("--cache", default=str(HERE / "results" / "quality.jsonl"), help="JSON-lines result cache")
    parser.add_argument("--markdown", default=str(HERE / "results" / "quality.md"), help="table to write")
    parser.add_argument("--plot", default=str(HERE / "results" / "quality.png"), help="anytime plot to write")
    parser.add_argument("--docs", action="store_true", help="also write the table into docs/strategies.md")
    parser.add_argument(
        "--any-revision",
        nargs="?",
        const="all",
        default="",
        metavar="METHODS",
        help="report cached runs of these methods' older code too (all methods without a list; METHOD@N: only "
        "their first N evaluations)",
    )
    parser.add_argument(
        "--pin",
        default="",
        metavar="NAME=REVISION",
        help="report a strategy's cached runs of this revision (commas), e.g. the one a docs table was made from",
    )
    parser.add_argument("--ask-latency", metavar="STRATEGIES", help="time asks of these strategies instead")
    parser.add_argument("--latency-sizes", default="50,100,200,500", help="told trials to time asks at, commas")
    args = parser.parse_args()
    if args.ask_latency:
        ask_latency(args.ask_latency.split(","), tuple(int(n) for n in args.latency_sizes.split(",")))
        return
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    tasks, names = select_tasks(args.tasks), args.methods.split(",")
    tasks = [t for t in tasks if re.search(args.match, t)]
    seeds, budgets = list(range(args.seeds)), sorted(int(b) for b in args.budgets.split(","))
    for name in names:
        methods.runner(name)
    store = Store(Path(args.cache))
    if not args.no_run:
        run(store, tasks, names, seeds, args.trials, args.jobs)
    results = load(store, tasks, names, seeds, budgets, args.any_revision, args.pin)
    pairs = [p for p in PAIRS if p[0] in names and p[1] in names]
    table = report.markdown(results, tasks, names, budgets, pairs)
    Path(args.markdown).write_text(table)
    print(table)
    report.plot(results, tasks, names, max(budgets), args.plot)
    print(f"table: {args.markdown}; anytime plot: {args.plot}")
    if args.docs:
        splice_docs(table)


if __name__ == "__main__":
    main()
