"""Results cached per (task, method, seed, revision) as JSON lines, so a run resumes and grows.

A record keeps every evaluated point's true value (and the observed one for a noisy task) in order;
a longer run of the same key serves every shorter budget. The revision is the method's code or
library version (`methods.revision`): changing a strategy's source retires its old results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from suite import methods
from suite.tasks import TASKS

Key = tuple[str, str, int, str]


def run_one(task_name: str, method: str, trials: int, seed: int, rev: str) -> dict[str, Any]:
    """Run `method` on a task for `trials` evaluations and return the record to cache."""
    task = TASKS[task_name]
    noise = np.random.default_rng([seed, 7919])
    true: list[float] = []
    observed: list[float] = []

    def objective(params: dict) -> float:
        value = task.true_value(params)
        true.append(value)
        observed.append(value + task.noise * float(noise.normal()) if task.noise else value)
        return observed[-1]

    started = time.perf_counter()
    error = None
    try:
        methods.runner(method)(method, task.space, objective, trials, seed)
    except Exception as exc:  # a method that cannot run this task (a grid too large): recorded, not fatal
        error = f"{type(exc).__name__}: {exc}"
    record = {
        "task": task_name,
        "method": method,
        "seed": seed,
        "revision": rev,
        "trials": len(true),
        "requested": trials,
        "true": true,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if task.noise:
        record["observed"] = observed
    if error:
        record["error"] = error
    return record


class Store:
    """The JSON-lines cache: the longest record per key wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[Key, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    self._keep(json.loads(line))

    def _keep(self, record: dict[str, Any]) -> None:
        key = (record["task"], record["method"], record["seed"], record["revision"])
        old = self.records.get(key)
        if old is None or record["requested"] > old["requested"]:
            self.records[key] = record

    def get(self, task: str, method: str, seed: int, rev: str | None, trials: int) -> dict[str, Any] | None:
        """The record of this key covering `trials` evaluations; with `rev` None, the longest of any revision."""
        if rev is None:
            found = [r for k, r in self.records.items() if k[:3] == (task, method, seed)]
            record = max(reversed(found), key=lambda r: r["requested"], default=None)  # the latest of the longest
        else:
            record = self.records.get((task, method, seed, rev))
        return record if record is not None and record["requested"] >= trials else None

    def add(self, record: dict[str, Any]) -> None:
        self._keep(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
