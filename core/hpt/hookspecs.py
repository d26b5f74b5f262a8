"""The hooks a plugin may implement (entry-point group `hpt`); docs/plugins.md shows each with an example.

Registration hooks hand the plugin a `register` callback:

    from hpt import hookimpl

    @hookimpl
    def hpt_register_strategies(register):
        register("halton", "my_pkg.halton:HaltonStrategy", requires={"scipy": "scipy"})

`target` is a class or a `"module:Class"` string; the string form keeps start-up fast because the
module is imported only when the plugin is used, and lets `hpt run --help` read the class's options
from its source. `requires` maps import names to pip requirement names; a missing one makes the
plugin report a one-line install command instead of failing. Event hooks observe a running study
(notifiers, custom loggers); one that raises is logged and skipped, and the other plugins' hooks run.

A module is registered whole or not at all: a function named `hpt_...` that is no hook here (a typo:
`hpt_register_strategys`) rejects every hook of that module, and `hpt plugins` shows why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from hpt.study import Study
    from hpt.trial import Trial

hookspec = pluggy.HookspecMarker("hpt")
hookimpl = pluggy.HookimplMarker("hpt")


class Register(Protocol):
    """The callback the registration hooks receive."""

    def __call__(
        self,
        name: str,
        target: str | type,
        *,
        requires: Mapping[str, str] | None = None,
        extra: str | None = None,
        summary: str = "",
        worker_imports: Sequence[str] = (),
        default: bool = False,
    ) -> None:
        """Register `target` (a class or `"module:Class"`) under `name`.

        requires: import name -> pip requirement of each dependency, checked without importing.
        extra: the `hpt[extra]` that installs them, for plugins shipped with hpt.
        summary: one line for `hpt plugins`.
        worker_imports: for a backend, modules its trials need beyond its own module; worker pools
            import them once, up front, while the driver builds the backend.
        default: use this one when a command names none of its kind (`hpt run` without --backend).
        """


@hookspec
def hpt_register_strategies(register: Register) -> None:
    """Called once, when the registry is built: register search strategies (`hpt.Strategy` subclasses,
    constructed as `cls(space, directions=..., seed=..., **options)`)."""


@hookspec
def hpt_register_backends(register: Register) -> None:
    """Called once, when the registry is built: register backends (`hpt.Backend` subclasses, constructed
    as `cls(**options)`)."""


@hookspec
def hpt_register_executors(register: Register) -> None:
    """Called once, when the registry is built: register executors (`hpt.Runner` subclasses, constructed
    as `cls(workers, preload=..., **options)`)."""


@hookspec
def hpt_register_commands(cli: click.Group) -> None:
    """Called when the `hpt` command starts: add click commands to the `cli` group (import heavy
    libraries inside the command, not at module level)."""


@hookspec
def hpt_study_started(study: Study) -> None:
    """Called when `study` is about to ask for its first trial (once per `optimize` or first `ask`)."""


@hookspec
def hpt_trial_started(study: Study, trial: Trial) -> None:
    """Called when `trial` was submitted for evaluation (state running; a promotion starts again)."""


@hookspec
def hpt_trial_finished(study: Study, trial: Trial) -> None:
    """Called when `trial` finished: complete, pruned or failed (`trial.error` says why)."""


@hookspec
def hpt_study_finished(study: Study, status: str) -> None:
    """Called when `study` ended; `status` is FINISHED, KILLED (Ctrl-C) or FAILED."""


@hookspec
def hpt_study_artifacts(study: Study, directory: Path) -> None:
    """Called when a study finished, before its parent run closes: write files (plots, reports) into
    `directory`; a tracked study logs them under its parent run's `plots/`, `hpt run --plots DIR` writes
    them to DIR itself."""
