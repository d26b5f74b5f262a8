"""Early-stopping strategies: successive halving, hyperband and ASHA.

They decide *how much* budget (epochs) a configuration gets; *which* configurations to try is
left to a sampler, any other strategy (`sampler="skopt"` makes hyperband BOHB-like). A promotion
continues the same trial (same number, same MLflow run) from its checkpoint with more budget.

The sampler is told each configuration once, with the result measured at the budget it started
at (its first rung), so a model-based sampler compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hpt.errors import PluginError
from hpt.space import Params, Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial

SCHEDULERS = ("successive-halving", "hyperband", "asha")


def rung_budgets(min_budget: float, max_budget: float, eta: float) -> list[float]:
    """Budgets max_budget * eta^-k for k = K..0, the lowest at least `min_budget` (integers when both ends are)."""
    if not 0 < min_budget < max_budget:
        raise PluginError(f"need 0 < min_budget < max_budget, got {min_budget:g} and {max_budget:g}")
    if eta < 2:
        raise PluginError(f"eta must be at least 2, got {eta:g}")
    top = math.floor(math.log(max_budget / min_budget, eta) + 1e-9)
    budgets = [max_budget * eta**-k for k in range(top, -1, -1)]
    if float(min_budget).is_integer() and float(max_budget).is_integer():
        budgets = [float(max(round(b), 1)) for b in budgets]
    return budgets


def make_sampler(name: str, space: Space, directions: Sequence[str], seed: int | None, options: Mapping | None):
    if name in SCHEDULERS:
        raise PluginError(f"sampler {name!r} is itself a scheduler; use random, grid, skopt, deap, ...")
    from hpt.plugins import registry

    return registry().create("strategy", name, space, directions=directions, seed=seed, **dict(options or {}))


class _Ladder:
    """Rungs of results: which trials reached which budget, and how they did there."""

    def __init__(self, budgets: Sequence[float]) -> None:
        self.budgets = list(budgets)
        self.members: list[set[int]] = [set() for _ in budgets]  # started at that rung (running or done)
        self.results: list[dict[int, float]] = [{} for _ in budgets]  # loss at that rung
        self.params: dict[int, Params] = {}

    def rung_of(self, budget: float) -> int:
        return min(range(len(self.budgets)), key=lambda i: abs(self.budgets[i] - budget))

    def record(self, trial: Trial, loss: float | None) -> int:
        """Record a result; earlier budgets of a resumed trial mark the rungs it passed through."""
        history = trial.budget_history or [trial.budget]
        for budget in history[:-1]:  # rungs it was promoted from; a resumed trial's value there is gone,
            rung = self.rung_of(budget)  # but it was among the best, which is all a ranking needs
            self.members[rung].add(trial.number)
            self.results[rung].setdefault(trial.number, -math.inf)
        rung = self.rung_of(history[-1])
        self.members[rung].add(trial.number)
        self.results[rung][trial.number] = math.inf if loss is None else loss
        self.params[trial.number] = trial.params
        return rung

    def promotable(self, rung: int, quota: int) -> list[int]:
        """The best `quota` finished trials of `rung` that have not moved up yet (never a failed one)."""
        ranked = sorted(self.results[rung].items(), key=lambda kv: kv[1])[:quota]
        return [n for n, loss in ranked if math.isfinite(loss) and n not in self.members[rung + 1]]

    def promote(self, number: int, rung: int) -> Suggestion:
        self.members[rung + 1].add(number)
        return Suggestion(self.params[number], self.budgets[rung + 1], continues=number)


class _SchedulerBase(Strategy):
    """What successive halving, hyperband and ASHA share: rungs of budgets and a sampler.

    Options:
        min_budget: the smallest budget (epochs) a configuration starts with.
        max_budget: the largest budget a configuration is promoted to.
        eta: the promotion ratio: the best 1/eta of a rung move up to eta times its budget.
        sampler: the strategy that proposes new configurations (random, auto, skopt, ...: BOHB-like).
        sampler_options: options of the sampler, as a mapping (`--sampler-options "{n_initial_points: 5}"`).
    """

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        min_budget: float = 1,
        max_budget: float = 27,
        eta: float = 3,
        sampler: str | Strategy = "random",
        sampler_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        if len(self.directions) > 1:
            raise PluginError(f"{self.name} optimises one objective")
        self.budgets = rung_budgets(float(min_budget), float(max_budget), float(eta))
        self.eta = float(eta)
        self.sampler = (
            sampler
            if isinstance(sampler, Strategy)
            else make_sampler(sampler, space, directions, seed, sampler_options)
        )

    def warm_start(self, trials: Sequence[Trial]) -> None:
        """Earlier studies' trials teach the sampler; rungs only hold this study's trials."""
        self.sampler.warm_start(trials)


class _Bracket:
    """One run of synchronous successive halving over `budgets`, starting `n_configs` configurations."""

    def __init__(self, budgets: Sequence[float], n_configs: int | None, eta: float, sampler: Strategy) -> None:
        self.ladder = _Ladder(budgets)
        self.n_configs, self.eta, self.sampler = n_configs, eta, sampler
        self.assigned = 0
        self.closed = False  # no new configurations will come: rung 0 is what it is

    @property
    def budgets(self) -> list[float]:
        return self.ladder.budgets

    def expected(self, rung: int) -> int:
        """How many trials rung `rung` holds once it is full (unknown, 0, while rung 0 is still open)."""
        if not self.closed and self.n_configs is None:
            return 0
        size = self.assigned if self.closed else self.n_configs
        for _ in range(rung):
            size = max(1, math.floor(size / self.eta))
        return size

    def promotions(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        for rung in reversed(range(len(self.budgets) - 1)):
            full = self.expected(rung)
            if full == 0 or len(self.ladder.results[rung]) < full:
                continue
            for number in self.ladder.promotable(rung, self.expected(rung + 1)):
                if len(out) < n:
                    out.append(self.ladder.promote(number, rung))
        return out

    def ask(self, n: int) -> list[Suggestion]:
        out = self.promotions(n)
        fresh = n - len(out) if self.n_configs is None else min(n - len(out), self.n_configs - self.assigned)
        if fresh > 0:
            new = [Suggestion(s.params, self.budgets[0]) for s in self.sampler.ask(fresh)]
            self.assigned += len(new)
            out += new
        return out

    def ask_promotions(self, n: int) -> list[Suggestion]:
        self.closed = True
        return self.promotions(n)

    def tell(self, trial: Trial, loss: float | None) -> None:
        first_result = trial.number not in self.ladder.params
        self.ladder.record(trial, loss)
        if first_result:
            self.assigned = max(self.assigned, len(self.ladder.members[0]))
            self.sampler.tell(trial)


class SuccessiveHalving(_SchedulerBase):
    """Start `n_configs` configurations at the lowest budget (default: as many as the study's trial
    count allows); when a rung has finished, promote its best 1/eta to eta times the budget; repeat up
    to `max_budget`.

    Options:
        n_configs: configurations started at the lowest budget (default: as many as the trial count allows).
    """

    name = "successive-halving"

    def __init__(self, space: Space, *, n_configs: int | None = None, **options: Any) -> None:
        super().__init__(space, **options)
        self.bracket = _Bracket(self.budgets, int(n_configs) if n_configs else None, self.eta, self.sampler)

    def ask(self, n: int = 1) -> list[Suggestion]:
        return self.bracket.ask(n)

    def ask_promotions(self, n: int = 1) -> list[Suggestion]:
        return self.bracket.ask_promotions(n)

    def tell(self, trial: Trial) -> None:
        self.bracket.tell(trial, self.loss(trial))


class Hyperband(_SchedulerBase):
    """The brackets of Li et al.: successive halving started at every rung, so configurations get
    both many cheap looks and a few long ones. Brackets run side by side to keep workers busy.

    Options:
        iterations: sets of brackets run one after another (None: until the study stops).
    """

    name = "hyperband"

    def __init__(self, space: Space, *, iterations: int | None = 1, **options: Any) -> None:
        super().__init__(space, **options)
        self.iterations = int(iterations) if iterations else None
        self.brackets: list[_Bracket] = []
        self._add_iteration()

    def _add_iteration(self) -> None:
        s_max = len(self.budgets) - 1
        self.brackets += [
            _Bracket(self.budgets[s_max - s :], math.ceil((s_max + 1) / (s + 1) * self.eta**s), self.eta, self.sampler)
            for s in range(s_max, -1, -1)
        ]

    def _may_add_iteration(self) -> bool:
        """Start the next set of brackets once every bracket has handed out all its configurations."""
        started = len(self.brackets) // len(self.budgets)
        if all(b.assigned >= b.n_configs for b in self.brackets) and (
            self.iterations is None or started < self.iterations
        ):
            self._add_iteration()
            return True
        return False

    def _bracket_of(self, trial: Trial) -> _Bracket:
        """The bracket that started this trial: the oldest one with its first budget that has room."""
        first = (trial.budget_history or [trial.budget])[0]
        for bracket in self.brackets:
            if trial.number in bracket.ladder.params:
                return bracket
        while True:
            for bracket in self.brackets:
                if abs(bracket.budgets[0] - first) < 1e-9 and len(bracket.ladder.members[0]) < bracket.n_configs:
                    return bracket
            self._add_iteration()  # a resumed study told trials of a later iteration

    def ask(self, n: int = 1) -> list[Suggestion]:
        out: list[Suggestion] = []
        while True:
            for bracket in self.brackets:
                out += bracket.ask(n - len(out))
                if len(out) == n:
                    return out
            if not self._may_add_iteration():
                return out

    def ask_promotions(self, n: int = 1) -> list[Suggestion]:
        out: list[Suggestion] = []
        for bracket in self.brackets:
            out += bracket.ask_promotions(n - len(out))
        return out

    def tell(self, trial: Trial) -> None:
        self._bracket_of(trial).tell(trial, self.loss(trial))


class ASHA(_SchedulerBase):
    """Asynchronous successive halving: whenever a worker is free, promote a trial that is in the
    top 1/eta of the results its rung has so far, or else start a new configuration. Nobody waits
    for a rung to fill."""

    name = "asha"

    def __init__(self, space: Space, **options: Any) -> None:
        super().__init__(space, **options)
        self.ladder = _Ladder(self.budgets)

    def _promotions(self, n: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        while len(out) < n:
            found = False
            for rung in reversed(range(len(self.budgets) - 1)):
                quota = math.floor(len(self.ladder.results[rung]) / self.eta)
                candidates = self.ladder.promotable(rung, quota)
                if candidates:
                    out.append(self.ladder.promote(candidates[0], rung))
                    found = True
                    break
            if not found:
                break
        return out

    def ask(self, n: int = 1) -> list[Suggestion]:
        out = self._promotions(n)
        fresh = n - len(out)
        return out + ([Suggestion(s.params, self.budgets[0]) for s in self.sampler.ask(fresh)] if fresh else [])

    def ask_promotions(self, n: int = 1) -> list[Suggestion]:
        return self._promotions(n)

    def tell(self, trial: Trial) -> None:
        first_result = trial.number not in self.ladder.params
        self.ladder.record(trial, self.loss(trial))
        if first_result:
            self.sampler.tell(trial)
