"""hpt: hyperparameter tuning for neural networks.

    import hpt
    study = hpt.optimize(lambda p: (p["x"] - 2) ** 2, {"x": hpt.Float(-5, 5)}, trials=30, seed=0)
    print(study.best_params, study.best_value)

Nothing heavy is imported here: MLflow, PyTorch and the strategies' libraries load on first use.
"""

from hpt.api import create_study, optimize, resume_study
from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.config import StudyConfig
from hpt.errors import HptError, PluginError, SpaceError
from hpt.executors import Runner
from hpt.hookspecs import hookimpl
from hpt.observers import StudyObserver
from hpt.space import Categorical, Fixed, Float, Int, Space
from hpt.strategy import Strategy
from hpt.study import Study
from hpt.trial import Suggestion, Trial, TrialState

__version__ = "0.1.0"


def importance(study: Study | str, tracking_uri: str | None = None) -> dict[str, float]:
    """Rank a study's parameters by their share of the objective's variation (fANOVA on a random forest
    fitted to its complete trials), largest first. `study` is a Study or the parent run id of a logged
    one. scikit-learn loads on the first call."""
    from hpt_reports.importance import study_importance

    return study_importance(study, tracking_uri)


__all__ = [
    "Backend",
    "Categorical",
    "Fixed",
    "Float",
    "HptError",
    "Int",
    "PluginError",
    "Result",
    "Runner",
    "Space",
    "SpaceError",
    "Strategy",
    "StudyConfig",
    "StudyObserver",
    "Study",
    "Suggestion",
    "Trial",
    "TrialContext",
    "TrialPruned",
    "TrialState",
    "create_study",
    "hookimpl",
    "importance",
    "optimize",
    "resume_study",
]
