"""Variation in the unit cube with DEAP's bounded operators: simulated binary crossover, then
polynomial mutation (always applied to a child that crossover left unchanged, so no evaluation
is spent on a copy of its parent)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from deap import tools

from hpt_deap.generational import Genes


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
