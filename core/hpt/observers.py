"""Study observers: what gets told about a study's progress (the MLflow tracker, the progress
bar, plugins' event hooks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpt.study import Study
    from hpt.trial import Trial


class StudyObserver:
    """No-op base: override the events you care about."""

    def study_started(self, study: Study) -> None:
        pass

    def trial_started(self, study: Study, trial: Trial) -> None:
        pass

    def trial_finished(self, study: Study, trial: Trial) -> None:
        pass

    def study_finished(self, study: Study, status: str) -> None:
        pass


class PluginHooks(StudyObserver):
    """Relays study events to the plugins' `hpt_*` event hooks."""

    def __init__(self) -> None:
        from hpt.plugins import registry

        self.hook = registry().pm.hook

    def study_started(self, study: Study) -> None:
        self.hook.hpt_study_started(study=study)

    def trial_started(self, study: Study, trial: Trial) -> None:
        self.hook.hpt_trial_started(study=study, trial=trial)

    def trial_finished(self, study: Study, trial: Trial) -> None:
        self.hook.hpt_trial_finished(study=study, trial=trial)

    def study_finished(self, study: Study, status: str) -> None:
        self.hook.hpt_study_finished(study=study, status=status)
