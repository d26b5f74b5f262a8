"""Variation in the unit cube with DEAP's bounded operators: simulated binary crossover, then
polynomial mutation (always applied to a child that crossover left unchanged, so no evaluation
is spent on a copy of its parent)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from deap import tools

from hpt_deap.generational import Genes, check_option


def vary(parents: Sequence[Sequence[float]], cxpb: float, mutpb: float, eta: float) -> list[Genes]:
    """Children of `parents` taken pairwise (an odd last parent is only mutated)."""
    children = [list(p) for p in parents]
    indpb = 1.0 / len(children[0]) if children else 1.0
    for a, b in zip(children[::2], children[1::2], strict=False):
        if random.random() < cxpb:
            tools.cxSimulatedBinaryBounded(a, b, eta=eta, low=0.0, up=1.0)
    for child, parent in zip(children, parents, strict=True):
        if random.random() < mutpb or list(child) == list(parent):
            tools.mutPolynomialBounded(child, eta=eta, low=0.0, up=1.0, indpb=indpb)
    return children


def check_variation(strategy: str, cxpb: float, mutpb: float, eta: float) -> None:
    """The options of `vary`: probabilities in [0, 1] and a positive crowding `eta`."""
    for option, value in (("cxpb", cxpb), ("mutpb", mutpb)):
        check_option(
            strategy, isinstance(value, int | float) and 0 <= value <= 1, f"{option} must be in [0, 1], got {value!r}"
        )
    check_option(strategy, isinstance(eta, int | float) and eta > 0, f"eta must be a positive number, got {eta!r}")
