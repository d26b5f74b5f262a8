"""What a script reports on its stdout, and which value of it is the trial's objective.

A report is a line holding a JSON object (`{"val_loss": 0.12}`) or `key=value` pairs (`val_loss=0.12`,
`epoch=3 val_loss=0.2`); any other line is the script's own output and is left alone. A report with a
`step` (or `epoch`) is a point of the learning curve; one without is a final result (the last one counts).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

STEP_KEYS = ("step", "epoch")
"""Keys that make a report a point of the learning curve (the first present wins)."""

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_PAIR = re.compile(rf"([A-Za-z_][\w.\-/]*)\s*=\s*({_NUMBER})(?=[\s,;]|$)", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s,;]*")


@dataclass
class Report:
    """One report line: its step (None for a final result) and its numeric values."""

    step: int | None
    metrics: dict[str, float]


def parse_line(line: str) -> Report | None:
    """The report a line of stdout holds, or None when it holds none."""
    text = line.strip()
    if text.startswith("{") and text.endswith("}"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        numbers = {str(k): float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    else:
        pairs = _PAIR.findall(text)
        if not pairs or _SEPARATORS.fullmatch(_PAIR.sub("", text)) is None:
            return None
        numbers = {key: float(value) for key, value in pairs}
    step_key = next((key for key in STEP_KEYS if key in numbers), None)
    step = numbers.get(step_key) if step_key else None
    for key in STEP_KEYS:
        numbers.pop(key, None)
    if not numbers or (step is not None and not math.isfinite(step)):
        return None
    return Report(None if step is None else int(step), numbers)


@dataclass
class StdoutReports:
    """The reports of one run of a script: its learning curve of `metric` and its last final result."""

    metric: str
    curve: list[float] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    stepped: set[str] = field(default_factory=set)
    """Every metric reported with a step."""

    def add(self, line: str) -> Report | None:
        """Take a line of stdout; returns its report, if it is one."""
        report = parse_line(line)
        if report is None:
            return None
        if report.step is None:
            self.final = report.metrics
            return report
        self.stepped.update(report.metrics)
        if self.metric in report.metrics:
            self.curve.append(report.metrics[self.metric])
        return report

    def final_metrics(self) -> dict[str, float]:
        """The final result's metrics that are no point of a curve (those are in the curve already: logged
        again at the trial's last step they would muddle it)."""
        return {k: v for k, v in self.final.items() if k not in self.stepped}

    def objective(self, how: str, direction: str) -> float | None:
        """The objective from stdout alone (None when the script printed no `metric`): with `how="last"` the
        final result, else the last point of the curve; with `how="best"` the best value printed."""
        final = self.final.get(self.metric)
        if how == "best":
            return pick([*self.curve, *([] if final is None else [final])], how, direction)
        return final if final is not None else pick(self.curve, how, direction)


def pick(values: Sequence[float], how: str, direction: str) -> float | None:
    """The last value, or the best one in `direction` (NaNs never best); None for no values."""
    if not values:
        return None
    if how == "last":
        return values[-1]
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return values[-1]
    return min(finite) if direction == "minimize" else max(finite)
