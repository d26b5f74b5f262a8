"""Registers the store commands and the study-end artifacts (entry point `hpt = reports`).

Only click is imported at start-up; each command imports its work's libraries when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpt import hookimpl

if TYPE_CHECKING:
    import click

    from hpt.study import Study


@hookimpl
def hpt_register_commands(cli: click.Group) -> None:
    from hpt_reports.commands import compare, ui

    cli.add_command(compare)
    cli.add_command(ui)


@hookimpl
def hpt_study_artifacts(study: Study, directory: Path) -> None:
    """The study's plots under `plots/` (nothing when matplotlib is missing)."""
    from hpt.errors import HptError
    from hpt_reports.plots import save_study_plots

    try:
        save_study_plots(study, directory / "plots")
    except HptError:  # matplotlib is not installed
        pass
