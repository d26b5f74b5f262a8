"""What a params dict describes: layer widths, each activation (defined here once), initial weights, and the
`nn.Module` a trained network is exported as.

Training never builds a module: the engine (`hpt_torch.engine`) holds weights as rows of a stack. A module is
built only to hand a trained network to MLflow (`build_mlp` from the engine's weights)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hpt_torch import kernels


@dataclass(frozen=True)
class Activation:
    """One hidden-layer activation: its function, its module (for the exported model), the gain the weight
    initialisations use for it, and its backward (`kernels`)."""

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    module: Callable[[], nn.Module]
    gain: str

    def backward(self, device: torch.device) -> kernels.Backward:
        """The gradient at the pre-activations, written over the upstream gradient (see `kernels`)."""
        return kernels.activation_backward(self.name, self.forward, device)


ACTIVATIONS = {
    a.name: a
    for a in (
        Activation("relu", F.relu, nn.ReLU, "relu"),
        Activation("leaky_relu", F.leaky_relu, nn.LeakyReLU, "leaky_relu"),  # slope 0.01 (kernels.LEAKY_SLOPE)
        Activation("elu", F.elu, nn.ELU, "relu"),  # ELU and GELU behave close enough to ReLU for the gain
        Activation("selu", F.selu, nn.SELU, "selu"),
        Activation("gelu", F.gelu, nn.GELU, "relu"),
        Activation("tanh", torch.tanh, nn.Tanh, "tanh"),
        Activation("sigmoid", torch.sigmoid, nn.Sigmoid, "sigmoid"),
    )
}
MIN_PYRAMID_WIDTH = 4


def hidden_widths(n_hidden: int, n_neurons: int, shape: str) -> list[int]:
    """`constant`: every hidden layer has `n_neurons`; `pyramid`: each layer halves the previous one."""
    if shape == "pyramid":
        return [max(MIN_PYRAMID_WIDTH, n_neurons // 2**i) for i in range(n_hidden)]
    return [n_neurons] * n_hidden


def layer_shapes(params: Mapping[str, Any], n_inputs: int, n_outputs: int) -> list[tuple[int, int]]:
    """(outputs, inputs) of each linear layer, input layer first."""
    widths = [n_inputs, *hidden_widths(params["n_hidden"], params["n_neurons"], params["layer_shape"]), n_outputs]
    return list(zip(widths[1:], widths[:-1], strict=True))


def initial_weights(params: Mapping[str, Any], n_inputs: int, n_outputs: int, seed: int) -> list[torch.Tensor]:
    """Weight (`[out, in]`) and bias of each layer, drawn from a generator seeded with `seed` (on the CPU, so a
    seed gives the same network on every device).

    `default` is PyTorch's own `nn.Linear` initialisation (uniform within 1/sqrt(fan_in), biases too); `he` is
    Kaiming normal, `xavier` Glorot uniform, `lecun` normal with variance 1/fan_in, all with zero biases. The
    output layer uses a linear gain."""
    generator = torch.Generator().manual_seed(int(seed))
    shapes = layer_shapes(params, n_inputs, n_outputs)
    scheme, activation = params["init"], ACTIVATIONS[params["activation"]]
    out = []
    for index, (fan_out, fan_in) in enumerate(shapes):
        gain_name = activation.gain if index < len(shapes) - 1 else "linear"
        weight, bias = torch.empty(fan_out, fan_in), torch.zeros(fan_out)
        if scheme == "default":
            bound = 1 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=generator)
            bias.uniform_(-bound, bound, generator=generator)
        elif scheme == "he":
            nonlinearity = gain_name if gain_name in ("relu", "leaky_relu") else "linear"
            weight.normal_(0, nn.init.calculate_gain(nonlinearity) / math.sqrt(fan_in), generator=generator)
        elif scheme == "xavier":
            bound = nn.init.calculate_gain(gain_name) * math.sqrt(6 / (fan_in + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
        else:  # lecun
            weight.normal_(0, 1 / math.sqrt(fan_in), generator=generator)
        out += [weight, bias]
    return out


def build_mlp(params: Mapping[str, Any], weights: Sequence[torch.Tensor]) -> nn.Sequential:
    """The network as a module, Linear -> activation -> dropout per hidden layer, then a linear output, holding
    `weights` (weight and bias per layer, as `initial_weights` lays them out). SELU gets alpha dropout."""
    layers: list[nn.Module] = []
    pairs = list(zip(weights[0::2], weights[1::2], strict=True))
    for index, (weight, bias) in enumerate(pairs):
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        layers.append(linear)
        if index < len(pairs) - 1:
            layers.append(ACTIVATIONS[params["activation"]].module())
            if params["dropout"] > 0:
                dropout = nn.AlphaDropout if params["activation"] == "selu" else nn.Dropout
                layers.append(dropout(params["dropout"]))
    return nn.Sequential(*layers)
