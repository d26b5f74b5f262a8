"""The configuration of a study: one typed record that the Python API, the CLI, `hpt compare` and resume
all build a study from, that the MLflow parent run logs once (`config.json`, and its set values as
params) and that a resume reads back."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpt.errors import HptError
from hpt.trial import DIRECTIONS


@dataclass
class StudyConfig:
    """Everything that decides what a study does. Plugin names left as None mean the registered default
    (`hpt plugins` shows which); option mappings go to the plugin's constructor as keyword arguments."""

    backend: str | None = None
    """What to tune, by registered name (the Python API may pass an object instead)."""
    backend_options: dict[str, Any] = field(default_factory=dict)
    strategy: str | None = None
    strategy_options: dict[str, Any] = field(default_factory=dict)
    executor: str | None = None
    """None: in this process with one worker, the default executor with more."""
    executor_options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    directions: list[str] | None = None
    """One per objective; None: the backend's own."""
    seed: int | None = None
    trials: int | None = None
    """New configurations to evaluate in all (a resumed study counts the ones it has)."""
    timeout: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    """`--set` pins and narrowings of the space, as text: `{"lr": "1e-4..1e-2"}`."""
    prune: str | None = None
    prune_options: dict[str, Any] = field(default_factory=dict)
    batch_trials: int | str | None = None
    """Trials evaluated as one batch per worker; `"auto"`: as many as the backend says pay off."""
    max_failures: int | None = None
    trial_timeout: float | None = None
    experiment: str = "hpt"
    tracking_uri: str | None = None
    plots: bool = True
    """Whether plugins write end-of-study artifacts (plots, importance) to the parent run."""
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    """Extra tags of the parent run (`hpt compare` tags its studies `hpt.comparison=<id>`)."""
    warm_start: str | None = None
    """Parent run id of an earlier study whose finished trials the strategy is told first."""
    register_model: str | None = None
    """Model Registry name for the best trial's model."""
    checkpoint_root: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check what can be checked without building anything; one clear line for the first problem."""
        for d in self.directions or ():
            if d not in DIRECTIONS:
                raise HptError(f"unknown direction {d!r}; use minimize or maximize")
        for name in ("workers", "trials", "batch_trials", "max_failures"):
            value = getattr(self, name)
            if name == "batch_trials" and value == "auto":
                continue
            if value is not None and (not isinstance(value, int) or value < (0 if name == "trials" else 1)):
                raise HptError(f"{name} must be a positive integer, got {value!r}")
        for name in ("timeout", "trial_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise HptError(f"{name} must be a positive number of seconds, got {value!r}")

    def replace(self, **changes: Any) -> StudyConfig:
        """A copy with some fields changed (validated again); an unknown field is one clear line."""
        unknown = sorted(set(changes) - FIELDS)
        if unknown:
            raise HptError(f"unknown study setting {unknown[0]!r}; settings: {', '.join(sorted(FIELDS))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field that is set (None and empty mappings left out, also inside the option mappings),
        JSON-ready."""
        out = {}
        for key, value in dataclasses.asdict(self).items():
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if v is not None}
            if value is not None and value != {}:
                out[key] = value
        return out

    def to_params(self) -> dict[str, str]:
        """The flat settings logged as MLflow params of the parent run: set scalars and each plugin option
        as `<kind>.<option>`; a checkpoint path would only make studies differ in the UI."""
        out: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if key == "checkpoint_root":
                continue
            if isinstance(value, dict):
                out.update({f"{key.removesuffix('_options')}.{k}": str(v) for k, v in value.items()})
            elif isinstance(value, list):
                out[key] = ",".join(map(str, value))
            else:
                out[key] = str(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyConfig:
        """Read back `to_dict()` (also a study logged by hpt 0.1); keys of no field are ignored."""
        return cls(**{k: v for k, v in data.items() if k in FIELDS})


FIELDS = frozenset(f.name for f in dataclasses.fields(StudyConfig))

__all__ = ["FIELDS", "StudyConfig"]
