"""The MLP's hyperparameters: their names, defaults, allowed choices and the default search space.

Kept free of torch so that building a space (or checking a params dict) costs no heavy import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpt.errors import SpaceError
from hpt.space import Categorical, Fixed, Float, Int, Space

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid")
INITS = ("default", "he", "xavier", "lecun")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "exponential", "step", "cosine")
LAYER_SHAPES = ("constant", "pyramid")
MOMENTUM_OPTIMIZERS = ("momentum", "nesterov")

MAX_EPOCHS = 50
PATIENCE = 8
LEARNING_RATE_RANGE = (1e-4, 1e-1)

DEFAULTS: dict[str, Any] = {
    "n_hidden": 2,
    "n_neurons": 64,
    "layer_shape": "constant",
    "activation": "relu",
    "init": "default",
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "momentum": 0.9,
    "batch_size": 64,
    "lr_schedule": "constant",
    "warmup_epochs": 0,
    "dropout": 0.0,
    "l1": 0.0,
    "l2": 0.0,
    "max_epochs": MAX_EPOCHS,
    "patience": PATIENCE,
}
"""Values used for any hyperparameter a params dict leaves out (e.g. a user's space that tunes only a few)."""

_CHOICES = {
    "activation": ACTIVATIONS,
    "init": INITS,
    "optimizer": OPTIMIZERS,
    "lr_schedule": SCHEDULES,
    "layer_shape": LAYER_SHAPES,
}
_POSITIVE_INTS = ("n_hidden", "n_neurons", "batch_size", "max_epochs", "patience")


def default_space(
    max_epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
    learning_rate: tuple[float, float] = LEARNING_RATE_RANGE,
) -> Space:
    """The space `hpt run --backend mlp` searches: architecture, optimiser, schedule and regularisation.

    `max_epochs` and `patience` are fixed (pin or narrow them with `--set`); momentum exists only for
    the optimisers that use it.
    """
    return Space(
        {
            "n_hidden": Int(1, 3),
            "n_neurons": Int(16, 256, log=True),
            "layer_shape": Categorical(LAYER_SHAPES),
            "activation": Categorical(ACTIVATIONS),
            "init": Categorical(INITS),
            "optimizer": Categorical(OPTIMIZERS),
            "learning_rate": Float(*learning_rate, log=True),
            "momentum": Float(0.5, 0.99, when={"optimizer": list(MOMENTUM_OPTIMIZERS)}),
            "batch_size": Categorical([32, 64, 128, 256]),
            "lr_schedule": Categorical(SCHEDULES),
            "warmup_epochs": Int(0, 3),
            "dropout": Float(0.0, 0.5),
            "l1": Float(1e-8, 1e-3, log=True),
            "l2": Float(1e-8, 1e-2, log=True),
            "max_epochs": Fixed(int(max_epochs)),
            "patience": Fixed(int(patience)),
        }
    )


def resolve(params: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in defaults for missing hyperparameters and reject unknown names or values.

    A misspelt name in a user's space would otherwise be silently ignored, so it is an error.
    """
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise SpaceError(f"unknown hyperparameter {unknown[0]!r} for the mlp backend; it takes {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **params}
    for name, choices in _CHOICES.items():
        if out[name] not in choices:
            raise SpaceError(f"parameter {name!r}: {out[name]!r} is not one of {list(choices)}")
    for name in _POSITIVE_INTS:
        if int(out[name]) < 1:
            raise SpaceError(f"parameter {name!r} must be at least 1, got {out[name]!r}")
        out[name] = int(out[name])
    out["warmup_epochs"] = int(out["warmup_epochs"])
    if not 0.0 <= float(out["dropout"]) < 1.0:
        raise SpaceError(f"parameter 'dropout' must be in [0, 1), got {out['dropout']!r}")
    for name in ("learning_rate", "momentum", "l1", "l2"):
        out[name] = float(out[name])
        if out[name] < 0 or (name == "learning_rate" and out[name] == 0):
            raise SpaceError(f"parameter {name!r} must be positive, got {out[name]!r}")
    return out
