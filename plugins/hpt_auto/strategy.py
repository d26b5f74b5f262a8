"""`auto`: the default strategy. It picks a search method from the space and the objective count.

- Two or more objectives: NSGA-II (`nsga2`, from the deap plugin), random search without it.
- One objective: Bayesian optimisation with hpt's own Gaussian process, the best
  model-based method of the quality suite (`benchmarks/quality.py`) at 15 and 30 trials and the
  cheapest to ask (`model=skopt` uses the skopt strategy instead; `model=auto` uses it for the first
  `switch_after` trials, then hands over to the GP, which is told every trial from the start):
  - inputs in the unit cube (log parameters on their log scale, integers in bins, categoricals one-hot,
    an inactive conditional parameter at a constant), a scrambled Sobol design for the first
    `n_initial_points` trials (d + 3 within 5..10 for d parameters, at most a quarter of the study's trials
    where the study tells them through `set_budget`; one log line says what was chosen);
  - outputs: each loss's gap above the best warped by a Yeo-Johnson power fitted by maximum likelihood
    (`hpt_auto.transform`), so losses over orders of magnitude (a diverged network, BBOB f6 and f12) do
    not squash the good region into one value, while well-spread losses stay as they are;
  - the next point maximises log EI: scored on random candidates and on perturbations of the best
    points seen, the best few refined by L-BFGS-B, integers and categoricals then snapped to valid
    values (each categorical's other choices tried on the winner);
  - pending trials are told the best loss so far (a constant liar), so parallel asks spread out;
  - with `local_after=N`, a trust region around the incumbent once N model-phase trials pass without
    improvement (off by default: on the diagnosis set it helped BBOB f6 and cost Levy-4 and f12 in 5-D).

The parts, each in its own module: `search_space` (params <-> model inputs), `transform` (losses -> targets),
`prior` and `gp` (the model), `acquisition` (log EI), `optim` (maximising it). Other strategies (skopt,
NSGA-II, random) are created through the plugin registry.

Resume: the random stream of each ask is derived from (seed, trials told, trials pending), and the
design point from the number of trials asked, so a study replayed through `tell` proposes what it would
have proposed had it never stopped; a configuration already finished or pending is never proposed again.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence

import numpy as np
from hpt.errors import PluginError
from hpt.space import Params, Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial

from hpt_auto.acquisition import log_ei
from hpt_auto.gp import GaussianProcess
from hpt_auto.optim import Box, candidates, refine, snap, trust_region
from hpt_auto.search_space import Encoding, key
from hpt_auto.transform import targets

MODELS = ("auto", "skopt", "gp")
log = logging.getLogger(__name__)


class AutoStrategy(Strategy):
    """Chooses the search for you: GP-based Bayesian optimisation for one objective, NSGA-II for several.

    Options:
        n_initial_points: trials from a scrambled Sobol design before the model is used (default: by the
            dimension and the budget).
        n_candidates: random candidates scored by the acquisition function per ask.
        n_refine: best candidates refined by L-BFGS-B per ask.
        warp: model power-transformed gaps above the best loss (Yeo-Johnson, rank-preserving): a few huge
            losses no longer flatten the model.
        dim_scaled: length-scale prior that grows with the dimension instead of Optuna's.
        model: `gp` (hpt's own GP, the default), `skopt` (the skopt strategy throughout) or `auto`
            (skopt for the first `switch_after` trials where scikit-optimize is installed, then hpt's GP).
        switch_after: trials told before `model=auto` hands over from scikit-optimize to hpt's own GP.
        local_after: model-phase trials without improvement before the search turns local (0: never).
    """

    name = "auto"
    multi_objective = True

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        n_initial_points: int | None = None,
        n_candidates: int = 2000,
        n_refine: int = 5,
        warp: bool = True,
        dim_scaled: bool = False,
        model: str = "gp",
        switch_after: int = 200,
        local_after: int = 0,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        for option, value in (
            ("n_initial_points", 1 if n_initial_points is None else n_initial_points),
            ("n_candidates", n_candidates),
            ("n_refine", n_refine),
            ("switch_after", switch_after),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PluginError(f"strategy 'auto': {option} must be an integer >= 1, got {value!r}")
        if isinstance(local_after, bool) or not isinstance(local_after, int) or local_after < 0:
            raise PluginError(f"strategy 'auto': local_after must be an integer >= 0 (0: never), got {local_after!r}")
        for option, value in (("warp", warp), ("dim_scaled", dim_scaled)):
            if not isinstance(value, bool):
                raise PluginError(f"strategy 'auto': {option} must be true or false, got {value!r}")
        if model not in MODELS:
            raise PluginError(f"strategy 'auto': model={model!r} is not supported; use one of {', '.join(MODELS)}")
        self.dim_scaled, self.switch_after, self.local_after = dim_scaled, switch_after, local_after
        self.inner: Strategy | None = None
        if len(self.directions) > 1:
            self.inner = _multi_objective(space, self.directions, seed)
            return
        self.encoding = Encoding(space)
        if not self.encoding.names:
            raise PluginError("strategy 'auto': the space has nothing to tune (every parameter is fixed)")
        self.n_candidates, self.n_refine, self.warp = n_candidates, n_refine, warp
        self.chosen_initial_points = n_initial_points
        self.budget: int | None = None
        self.n_initial_points, self.design_reason = self._design_size()
        self._announced = False
        self.base_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
        self.x: list[np.ndarray] = []  # inputs told, failures included
        self.y: list[float | None] = []  # their losses (None: failed, penalised at fit time)
        self.finished: set[str] = set()
        self.pending: dict[str, list[np.ndarray]] = {}
        self.asked = 0
        self._fit: tuple[int, np.ndarray] | None = None  # (trials fitted on, GP hyperparameters)
        self.skopt: Strategy | None = None  # told every trial; asked while it leads
        if model == "skopt" or (model == "auto" and importlib.util.find_spec("skopt") is not None):
            from hpt.plugins import registry

            self.skopt = registry().create("strategy", "skopt", space, directions=directions, seed=seed)
        self.model = model

    def set_budget(self, trials: int | None) -> None:
        """The study's total trial count where it is known: the initial design then takes at most a quarter."""
        if self.inner is not None:
            return
        self.budget = trials
        self.n_initial_points, self.design_reason = self._design_size()

    def _design_size(self) -> tuple[int, str]:
        if self.chosen_initial_points is not None:
            return self.chosen_initial_points, "n_initial_points"
        dim = len(self.encoding.names)
        size = min(max(dim + 3, 5), 10)
        reason = f"{dim} parameters: d + 3 within 5..10"
        if self.budget and max(3, self.budget // 4) < size:
            size = max(3, self.budget // 4)
            reason += f", at most a quarter of the {self.budget}-trial budget"
        return size, reason

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            if self.method == "skopt":
                log.info("auto: scikit-optimize (model=%s) with its own random initial design", self.model)
                return
            log.info(
                "auto: Gaussian-process BO (log EI); initial design of %d Sobol points (%s)",
                self.n_initial_points,
                self.design_reason,
            )

    @property
    def method(self) -> str:
        """What `auto` asks now: `skopt`, `gp` (hpt's own), or the multi-objective strategy it delegates to."""
        if self.inner is not None:
            return self.inner.name
        leads = self.skopt is not None and (self.model == "skopt" or len(self.y) < self.switch_after)
        return "skopt" if leads else "gp"

    def tell(self, trial: Trial) -> None:
        if self.inner is not None:
            self.inner.tell(trial)
            return
        if self.skopt is not None and (self.model == "skopt" or len(self.y) < self.switch_after):
            self.skopt.tell(trial)
        k = key(trial.params)
        waiting = self.pending.get(k)
        if waiting:
            waiting.pop()
            if not waiting:
                del self.pending[k]
        self.finished.add(k)
        self.x.append(self.encoding.encode(trial.params))
        self.y.append(self.loss(trial))

    def ask(self, n: int = 1) -> list[Suggestion]:
        if self.inner is not None:
            return self.inner.ask(n)
        self._announce()
        if self.method == "skopt":
            suggestions = self.skopt.ask(n)
            for s in suggestions:  # the GP learns of them too, for when it takes over
                self.pending.setdefault(key(s.params), []).append(self.encoding.encode(s.params))
            return suggestions
        import torch
        from threadpoolctl import threadpool_limits

        # small matrices: threads fighting over busy cores only slow the fit (torch's, and BLAS's inside
        # scipy's L-BFGS-B: twice as slow per ask with two threads on a busy 2-core machine)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpool_limits(limits=1):
                return [self._ask_one() for _ in range(n)]
        finally:
            torch.set_num_threads(threads)

    def _ask_one(self) -> Suggestion:
        n_pending = sum(len(v) for v in self.pending.values())
        rng = np.random.default_rng([self.base_seed, len(self.y), n_pending])
        known = [v for v in self.y if v is not None]
        if len(self.y) + n_pending < self.n_initial_points or len(set(known)) < 2:
            params = self._design(len(self.y) + n_pending, rng)
        else:
            params = self._from_model(rng)
        k = key(params)
        self.pending.setdefault(k, []).append(self.encoding.encode(params))
        self.asked += 1
        return Suggestion(params)

    def _unseen(self, params: Params) -> bool:
        k = key(params)
        return k not in self.finished and k not in self.pending

    def _design(self, index: int, rng: np.random.Generator) -> Params:
        from scipy.stats import qmc

        dim = len(self.encoding.names)
        sobol = qmc.Sobol(dim, seed=self.base_seed)
        units = sobol.random(2 ** max(1, math.ceil(math.log2(index + 1))))
        params = self.encoding.decode(self.encoding.from_units(units[index : index + 1])[0])
        return params if self._unseen(params) else self._random_unseen(rng)

    def _random_unseen(self, rng: np.random.Generator) -> Params:
        for _ in range(100):
            params = self.space.sample(rng)
            if self._unseen(params):
                return params
        return params  # a space with fewer configurations than trials: repeats are unavoidable

    def _hyperparameters(self, x: np.ndarray) -> np.ndarray:
        """The GP's hyperparameters, fitted on the first `fit_size(n)` trials: every trial up to 60, then
        refitted each time the trials grow by 5 % (the fit is most of an ask's cost at hundreds of trials).
        Fitted on a prefix, from the prior's centre: the same trials give the same model, resumed or not."""
        m = fit_size(len(self.y))
        if self._fit is None or self._fit[0] != m:
            model = GaussianProcess(x.shape[1], dim_scaled=self.dim_scaled)
            model.fit(x[:m], targets(self.y[:m], self.warp), maxiter=100 if m <= 100 else 50)
            self._fit = (m, model.theta)
        return self._fit[1]

    def stalled(self) -> int:
        """Model-phase trials told since the best one (a failure counts): the longer, the more local the search."""
        known = [(v, i) for i, v in enumerate(self.y) if v is not None]
        if not known:
            return 0
        best_at = min(known)[1]
        return len(self.y) - max(best_at + 1, self.n_initial_points)

    def _local_box(self, x: np.ndarray) -> Box | None:
        """A trust region around the incumbent once the global search stalls (`local_after` trials without
        improvement): its side halves every `local_after` more (0.4, 0.2, ... 0.025 of the cube, then again
        from 0.4), and every fourth stalled step stays global."""
        stall = self.stalled() - self.local_after
        if not self.local_after or stall < 0 or stall % 4 == 3 or len(self.encoding.numeric_columns) == 0:
            return None
        known = [(v, i) for i, v in enumerate(self.y) if v is not None]
        side = 0.4 * 0.5 ** ((stall // self.local_after) % 5)
        return trust_region(x[min(known)[1]], self.encoding.numeric_columns, side)

    def _from_model(self, rng: np.random.Generator) -> Params:
        import torch

        x = np.vstack(self.x)
        z = targets(self.y, self.warp)
        best = float(z.min())
        gp = GaussianProcess(x.shape[1], dim_scaled=self.dim_scaled)
        gp.theta = self._hyperparameters(x)
        pending = [p for ps in self.pending.values() for p in ps]  # constant liar: told the best loss so far
        gp.condition_on(np.vstack([x, *pending]), np.concatenate([z, np.full(len(pending), best)]))

        def acquisition(rows: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return log_ei(gp, torch.as_tensor(rows, dtype=torch.float64), best).numpy()

        box = self._local_box(x)
        pool = candidates(self.encoding, rng, x, z, self.n_candidates, box)
        scores = acquisition(pool)
        starts = np.vstack([pool[np.argsort(-scores)[: self.n_refine]], x[int(np.argmin(z))]])
        cols = self.encoding.numeric_columns
        refined = refine(gp, best, starts, cols, box=box)  # the incumbent too: exploitation
        finals = [snap(self.encoding, row, acquisition) for row in refined]
        finals.sort(key=lambda pair: -pair[1])
        for params, _ in finals:
            if self._unseen(params):
                return params
        for i in np.argsort(-scores):
            params = self.encoding.decode(pool[i])
            if self._unseen(params):
                return params
        return self._random_unseen(rng)


def fit_size(n: int) -> int:
    """How many of `n` told trials the GP's hyperparameters are fitted on (all up to 60, then in 5 % steps)."""
    return n if n <= 60 else n - n % (n // 20)


def _multi_objective(space: Space, directions: Sequence[str], seed: int | None) -> Strategy:
    from hpt.plugins import registry

    try:
        return registry().create("strategy", "nsga2", space, directions=directions, seed=seed)
    except PluginError:
        return registry().create("strategy", "random", space, directions=directions, seed=seed)
