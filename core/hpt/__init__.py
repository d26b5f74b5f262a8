"""hpt: hyperparameter tuning for neural networks.

    import hpt
    study = hpt.optimize(lambda p: (p["x"] - 2) ** 2, {"x": hpt.Float(-5, 5)}, trials=30, seed=0)
    print(study.best_params, study.best_value)

Nothing heavy is imported here: MLflow, PyTorch and the strategies' libraries load on first use.
"""

from hpt.api import create_study, optimize, resume_study
from hpt.backend import Backend, Result, TrialContext, TrialPruned
from hpt.errors import HptError, PluginError, SpaceError
from hpt.hookspecs import hookimpl
from hpt.space import Categorical, Fixed, Float, Int, Space
from hpt.strategy import Strategy
from hpt.study import Study
from hpt.trial import Suggestion, Trial, TrialState

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "Categorical",
    "Fixed",
    "Float",
    "HptError",
    "Int",
    "PluginError",
    "Result",
    "Space",
    "SpaceError",
    "Strategy",
    "Study",
    "Suggestion",
    "Trial",
    "TrialContext",
    "TrialPruned",
    "TrialState",
    "create_study",
    "hookimpl",
    "optimize",
    "resume_study",
]
