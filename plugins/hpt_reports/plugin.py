"""Registers the store commands and the study-end artifacts (entry point `hpt = reports`).

Only click is imported at start-up; each command imports its work's libraries when it runs.
"""

from __future__ import annotations

import contextlib
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

    from hpt_reports.importance import importance
    from hpt_reports.predict import predict
    from hpt_reports.studies import studies

    cli.add_command(studies)
    cli.add_command(importance)
    cli.add_command(predict)


@hookimpl
def hpt_study_artifacts(study: Study, directory: Path) -> None:
    """The study's plots, from PLOT_MIN_TRIALS finished trials on (nothing when matplotlib is missing), and,
    for a study of 20 trials or more, the parameters' importance (`importance.json`, `importance.png`), all
    in `directory` itself. A smaller study pays for neither (matplotlib alone takes about a second)."""
    from hpt.errors import HptError

    from hpt_reports.importance import write_study_importance
    from hpt_reports.plots import PLOT_MIN_TRIALS, save_study_plots

    write_study_importance(study, directory)  # importance.json and importance.png, from 20 trials on
    if sum(t.state.finished for t in study.trials) < PLOT_MIN_TRIALS:
        return
    with contextlib.suppress(HptError):  # matplotlib is not installed: no plots
        save_study_plots(study, directory)
