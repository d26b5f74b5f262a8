"""Builds the multilayer perceptron a params dict describes: layer widths, activation, dropout and
weight initialisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# The gain torch.nn.init knows for each activation (ELU and GELU behave close enough to ReLU).
_GAIN_NAME = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "elu": "relu",
    "gelu": "relu",
    "selu": "selu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}
MIN_PYRAMID_WIDTH = 4


def hidden_widths(n_hidden: int, n_neurons: int, shape: str) -> list[int]:
    """`constant`: every hidden layer has `n_neurons`; `pyramid`: each layer halves the previous one."""
    if shape == "pyramid":
        return [max(MIN_PYRAMID_WIDTH, n_neurons // 2**i) for i in range(n_hidden)]
    return [n_neurons] * n_hidden


def build_mlp(params: Mapping[str, Any], n_inputs: int, n_outputs: int) -> nn.Sequential:
    """Linear -> activation -> dropout per hidden layer, then a linear output layer.

    SELU gets alpha dropout, which keeps its self-normalising mean and variance.
    """
    layers: list[nn.Module] = []
    width = n_inputs
    for hidden in hidden_widths(params["n_hidden"], params["n_neurons"], params["layer_shape"]):
        layers += [nn.Linear(width, hidden), ACTIVATION_MODULES[params["activation"]]()]
        if params["dropout"] > 0:
            layers.append((nn.AlphaDropout if params["activation"] == "selu" else nn.Dropout)(params["dropout"]))
        width = hidden
    layers.append(nn.Linear(width, n_outputs))
    model = nn.Sequential(*layers)
    initialise(model, params["init"], params["activation"])
    return model


def initialise(model: nn.Sequential, scheme: str, activation: str) -> None:
    """Re-initialise the linear layers: `he` (Kaiming normal), `xavier` (Glorot uniform), `lecun`
    (normal with variance 1/fan_in); `default` keeps PyTorch's own. The output layer uses a linear gain."""
    if scheme == "default":
        return
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        gain_name = _GAIN_NAME[activation] if i < len(linears) - 1 else "linear"
        if scheme == "he":
            nonlinearity = gain_name if gain_name in ("relu", "leaky_relu") else "linear"
            nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(gain_name))
        else:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
        nn.init.zeros_(layer.bias)
