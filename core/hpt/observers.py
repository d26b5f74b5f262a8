"""Study observers: what gets told about a study's progress (the MLflow tracker, the progress
bar, plugins' event hooks)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpt.study import Study
    from hpt.trial import Trial

log = logging.getLogger(__name__)


class StudyObserver:
    """No-op base: override the events you care about.

    An observer's exceptions are logged and the study goes on, except those of a `critical` observer (the
    tracker: a store or journal that cannot be written), which stop the study.
    """

    critical = False

    def study_started(self, study: Study) -> None:
        pass

    def trial_started(self, study: Study, trial: Trial) -> None:
        pass

    def trial_finished(self, study: Study, trial: Trial) -> None:
        pass

    def study_finishing(self, study: Study, status: str) -> None:
        """The last trial is told; end-of-study work (final report, model, plots) comes next."""

    def study_finished(self, study: Study, status: str) -> None:
        pass


class PluginHooks(StudyObserver):
    """Relays study events to the plugins' `hpt_*` event hooks.

    Each plugin's implementation is called on its own, so one that raises is logged and skipped
    while the others still hear of the event (pluggy's own call would stop at the first error).
    """

    def __init__(self) -> None:
        from hpt.plugins import registry

        self.hook = registry().pm.hook

    def _call(self, name: str, **kwargs: Any) -> None:
        for impl in reversed(getattr(self.hook, name).get_hookimpls()):  # pluggy's order: last registered first
            try:
                impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception as exc:  # a notifier that breaks must not silence the others
                log.warning("plugin %s: %s failed: %s: %s", impl.plugin_name, name, type(exc).__name__, exc)

    def study_started(self, study: Study) -> None:
        self._call("hpt_study_started", study=study)

    def trial_started(self, study: Study, trial: Trial) -> None:
        self._call("hpt_trial_started", study=study, trial=trial)

    def trial_finished(self, study: Study, trial: Trial) -> None:
        self._call("hpt_trial_finished", study=study, trial=trial)

    def study_finished(self, study: Study, status: str) -> None:
        self._call("hpt_study_finished", study=study, status=status)
