"""What a running study tells the person who started it, on stderr: a start line, then a progress bar
in a terminal or one line per finished trial elsewhere (CI, `nohup`, a pipe), a word while the tracking
store is unreachable, and the finishing step."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from hpt.observers import StudyObserver

if TYPE_CHECKING:
    from hpt.study import Study
    from hpt.trial import Trial


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def start_line(study: Study) -> str:
    """`study NAME: strategy, backend, store, parent run, and how to follow it`."""
    tracker = study.tracker
    where = "not tracked"
    if tracker is not None:
        follow = "hpt ui" if not tracker.tracking_uri.startswith("http") else tracker.tracking_uri
        where = f"run {tracker.parent_run_id} in {tracker.tracking_uri} (follow it: {follow})"
    return (
        f"study {study.name}: strategy {study.strategy.name}, backend {study.backend.describe()}, "
        f"{study.runner.workers} worker(s); {where}"
    )


def outage_text(study: Study) -> str | None:
    """`tracking store unreachable since 14:02, 12 trials waiting`, while it is."""
    tracker = study.tracker
    outage = tracker.outage() if tracker is not None else None
    if outage is None:
        return None
    since, waiting = outage
    return f"tracking store unreachable since {datetime.fromtimestamp(since):%H:%M:%S}, {waiting} trials waiting"


class _Counter:
    """Counts configurations, not evaluations: a promoted trial finishing again is not a new trial."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def new(self, trial: Trial) -> bool:
        if trial.number in self.seen:
            return False
        self.seen.add(trial.number)
        return True


class ProgressBar(StudyObserver):
    """A rich progress bar (for a terminal) with the best value so far and the store's state."""

    def __init__(self, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task("trials", total=total, best="-", note="")
        self.counter = _Counter()

    def study_started(self, study: Study) -> None:
        self.progress.console.print(start_line(study), highlight=False)
        self.progress.start()

    def trial_finished(self, study: Study, trial: Trial) -> None:
        advance = 1 if self.counter.new(trial) else 0
        self.progress.update(self.task, advance=advance, best=fmt(study.best_value), note=outage_text(study) or "")

    def study_finishing(self, study: Study, status: str) -> None:
        if status == "FINISHED":
            self.progress.update(self.task, description="finishing: test score, best model, plots")

    def study_finished(self, study: Study, status: str) -> None:
        self.progress.stop()


class TrialLines(StudyObserver):
    """One line per finished trial, for logs that are not a terminal."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.counter = _Counter()
        self._finishing_at: float | None = None

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def study_started(self, study: Study) -> None:
        self._print(start_line(study))

    def trial_finished(self, study: Study, trial: Trial) -> None:
        self.counter.new(trial)
        of = f"/{self.total}" if self.total else ""
        budget = f" budget {trial.budget:g}" if trial.budget is not None else ""
        value = fmt(trial.value) if trial.values else (trial.error or "-").splitlines()[0][:120]
        self._print(
            f"trial {trial.number} ({len(self.counter.seen)}{of}) {trial.state.value}{budget}: {value}; "
            f"best {fmt(study.best_value)}; {trial.duration:.2f} s"
        )

    def study_finishing(self, study: Study, status: str) -> None:
        if status == "FINISHED":
            self._finishing_at = time.monotonic()
            self._print("finishing: test score of the best trial, its model, plots")


__all__ = ["ProgressBar", "TrialLines", "fmt", "outage_text", "start_line"]
