"""The hooks a plugin may implement (entry-point group `hpt`).

Registration hooks hand the plugin a `register` callback:

    from hpt import hookimpl

    @hookimpl
    def hpt_register_strategies(register):
        register("halton", "my_pkg.halton:HaltonStrategy", requires={"scipy": "scipy"})

`target` is a class or a `"module:Class"` string; the string form keeps start-up fast because
the module is imported only when the plugin is used. `requires` maps import names to pip
requirement names; a missing one makes the plugin report a one-line install command instead of
failing. Event hooks observe a running study (notifiers, custom loggers).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("hpt")
hookimpl = pluggy.HookimplMarker("hpt")


@hookspec
def hpt_register_strategies(register: Any) -> None:
    """Register search strategies: `register(name, target, requires=..., extra=..., summary=...)`."""


@hookspec
def hpt_register_backends(register: Any) -> None:
    """Register backends (things to tune)."""


@hookspec
def hpt_register_executors(register: Any) -> None:
    """Register executors (runner classes taking `(backend, workers, **options)`)."""


@hookspec
def hpt_register_commands(cli: Any) -> None:
    """Add click commands to the `hpt` command group."""


@hookspec
def hpt_study_started(study: Any) -> None:
    """A study is about to ask for its first trial."""


@hookspec
def hpt_trial_started(study: Any, trial: Any) -> None:
    """A trial was submitted for evaluation."""


@hookspec
def hpt_trial_finished(study: Any, trial: Any) -> None:
    """A trial finished (complete, pruned or failed)."""


@hookspec
def hpt_study_finished(study: Any, status: str) -> None:
    """A study ended: status is FINISHED, KILLED or FAILED."""


@hookspec
def hpt_study_artifacts(study: Any, directory: Any) -> None:
    """A study ended: write files (plots, reports) into `directory`; a tracked study logs them on its parent run."""
