"""`auto`: the default strategy. It picks a search method from the space and the objective count.

- Two or more objectives: NSGA-II (`nsga2`, from the deap plugin), random search without it.
- One objective: Bayesian optimisation with hpt's own Gaussian process (`hpt_auto.gp`), the best
  model-based method of the quality suite (`benchmarks/quality.py`) at 15 and 30 trials and the
  cheapest to ask (`model=skopt` uses the skopt strategy instead; `model=auto` uses it for the first
  `switch_after` trials, then hands over to the GP, which is told every trial from the start):
  - inputs in the unit cube (log parameters on their log scale, integers in bins, categoricals one-hot,
    an inactive conditional parameter at a constant), a scrambled Sobol design for the first
    `n_initial_points` trials;
  - outputs standardised and warped by a Yeo-Johnson power transform fitted by maximum likelihood
    (as HEBO does), so a few huge losses (a diverged network) do not flatten the model around the good
    region while well-spread losses stay as they are;
  - the next point maximises log EI: scored on random candidates and on perturbations of the best
    points seen, the best few refined by L-BFGS-B, integers and categoricals then snapped to valid
    values (each categorical's other choices tried on the winner);
  - pending trials are told the best loss so far (a constant liar), so parallel asks spread out.

Resume: the random stream of each ask is derived from (seed, trials told, trials pending), and the
design point from the number of trials asked, so a study replayed through `tell` proposes what it would
have proposed had it never stopped; a configuration already finished or pending is never proposed again.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hpt.errors import PluginError
from hpt.space import Categorical, Fixed, Params, Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial

MODELS = ("auto", "skopt", "gp")


def _key(params: Params) -> str:
    return repr(sorted(params.items()))


class Encoding:
    """Params <-> model inputs: one column per numeric parameter (its unit-cube code), one per choice of a
    categorical (one-hot)."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.names = [n for n, p in space.items() if not isinstance(p, Fixed)]
        self.slices: dict[str, slice] = {}
        start = 0
        for name in self.names:
            width = len(space[name].choices) if isinstance(space[name], Categorical) else 1
            self.slices[name] = slice(start, start + width)
            start += width
        self.width = start
        self.numeric = np.array([not isinstance(space[n], Categorical) for n in self.names])
        self.numeric_columns = np.array(
            [self.slices[n].start for n in self.names if not isinstance(space[n], Categorical)], dtype=int
        )

    def encode(self, params: Params) -> np.ndarray:
        row = np.zeros(self.width)
        for name in self.names:
            param, where = self.space[name], self.slices[name]
            if isinstance(param, Categorical):
                if name in params:
                    row[where.start + param.choices.index(param.validate(params[name]))] = 1.0
                else:
                    row[where] = 1.0 / len(param.choices)  # inactive: the same constant for every trial
            else:
                row[where.start] = param.encode(params[name]) if name in params else 0.5
        return row

    def decode(self, row: np.ndarray) -> Params:
        units = []
        for name in self.names:
            param, where = self.space[name], self.slices[name]
            if isinstance(param, Categorical):
                units.append((int(np.argmax(row[where])) + 0.5) / len(param.choices))
            else:
                units.append(float(np.clip(row[where.start], 0.0, 1.0)))
        return self.space.decode(units)

    def from_units(self, units: np.ndarray) -> np.ndarray:
        """Rows for points of [0, 1]^(parameters) (a design or random candidates)."""
        rows = np.zeros((len(units), self.width))
        for j, name in enumerate(self.names):
            param, where = self.space[name], self.slices[name]
            if isinstance(param, Categorical):
                k = len(param.choices)
                rows[np.arange(len(units)), where.start + np.minimum((units[:, j] * k).astype(int), k - 1)] = 1.0
            else:
                rows[:, where.start] = units[:, j]
        return rows


class AutoStrategy(Strategy):
    """Chooses the search for you: GP-based Bayesian optimisation for one objective, NSGA-II for several.

    Options:
        n_initial_points: trials from a scrambled Sobol design before the model is used.
        n_candidates: random candidates scored by the acquisition function per ask.
        n_refine: best candidates refined by L-BFGS-B per ask.
        warp: model power-transformed losses (Yeo-Johnson, rank-preserving): a few huge losses no longer
            flatten the model.
        dim_scaled: length-scale prior that grows with the dimension instead of Optuna's.
        model: `gp` (hpt's own GP, the default), `skopt` (the skopt strategy throughout) or `auto`
            (skopt for the first `switch_after` trials where scikit-optimize is installed, then hpt's GP).
        switch_after: trials told before `model=auto` hands over from scikit-optimize to hpt's own GP.
    """

    name = "auto"
    multi_objective = True

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        n_initial_points: int = 10,
        n_candidates: int = 2000,
        n_refine: int = 5,
        warp: bool = True,
        dim_scaled: bool = False,
        model: str = "gp",
        switch_after: int = 200,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        for option, value in (
            ("n_initial_points", n_initial_points),
            ("n_candidates", n_candidates),
            ("n_refine", n_refine),
            ("switch_after", switch_after),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PluginError(f"strategy 'auto': {option} must be an integer >= 1, got {value!r}")
        for option, value in (("warp", warp), ("dim_scaled", dim_scaled)):
            if not isinstance(value, bool):
                raise PluginError(f"strategy 'auto': {option} must be true or false, got {value!r}")
        if model not in MODELS:
            raise PluginError(f"strategy 'auto': model={model!r} is not supported; use one of {', '.join(MODELS)}")
        self.dim_scaled, self.switch_after = dim_scaled, switch_after
        self.inner: Strategy | None = None
        if len(self.directions) > 1:
            self.inner = _multi_objective(space, self.directions, seed)
            return
        self.encoding = Encoding(space)
        if not self.encoding.names:
            raise PluginError("strategy 'auto': the space has nothing to tune (every parameter is fixed)")
        self.n_initial_points, self.n_candidates, self.n_refine, self.warp = (
            n_initial_points,
            n_candidates,
            n_refine,
            warp,
        )
        self.base_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
        self.x: list[np.ndarray] = []  # inputs told, failures included
        self.y: list[float | None] = []  # their losses (None: failed, penalised at fit time)
        self.finished: set[str] = set()
        self.pending: dict[str, list[np.ndarray]] = {}
        self.asked = 0
        self._fit: tuple[int, np.ndarray] | None = None  # (trials fitted on, GP hyperparameters)
        self.skopt: Strategy | None = None  # told every trial; asked while it leads
        if model == "skopt" or (model == "auto" and importlib.util.find_spec("skopt") is not None):
            from hpt_skopt.strategy import SkoptStrategy

            self.skopt = SkoptStrategy(space, directions=directions, seed=seed)
        self.model = model

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
        key = _key(trial.params)
        waiting = self.pending.get(key)
        if waiting:
            waiting.pop()
            if not waiting:
                del self.pending[key]
        self.finished.add(key)
        self.x.append(self.encoding.encode(trial.params))
        self.y.append(self.loss(trial))

    def ask(self, n: int = 1) -> list[Suggestion]:
        if self.inner is not None:
            return self.inner.ask(n)
        if self.method == "skopt":
            suggestions = self.skopt.ask(n)
            for s in suggestions:  # the GP learns of them too, for when it takes over
                self.pending.setdefault(_key(s.params), []).append(self.encoding.encode(s.params))
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
        key = _key(params)
        self.pending.setdefault(key, []).append(self.encoding.encode(params))
        self.asked += 1
        return Suggestion(params)

    def _unseen(self, params: Params) -> bool:
        key = _key(params)
        return key not in self.finished and key not in self.pending

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

    def _targets(self, values: list[float | None]) -> np.ndarray:
        """Losses as the model sees them: failures at the worst loss, then (with `warp`) a Yeo-Johnson power
        transform fitted by maximum likelihood, which is near the identity on well-spread losses and near a
        log on heavy-tailed ones (a few diverged runs)."""
        from scipy.stats import yeojohnson

        worst = max((v for v in values if v is not None), default=0.0)
        y = np.array([worst if v is None else v for v in values], dtype=float)
        y = (y - y.mean()) / (y.std() or 1.0)
        if self.warp and np.ptp(y) > 0:
            with np.errstate(all="ignore"):
                warped = yeojohnson(y)[0]
            if np.all(np.isfinite(warped)):
                y = warped
        return (y - y.mean()) / (y.std() or 1.0)

    def _hyperparameters(self, x: np.ndarray) -> np.ndarray:
        """The GP's hyperparameters, fitted on the first `fit_size(n)` trials: every trial up to 60, then
        refitted each time the trials grow by 5 % (the fit is most of an ask's cost at hundreds of trials).
        Fitted on a prefix, from the prior's centre: the same trials give the same model, resumed or not."""
        from hpt_auto.gp import GaussianProcess

        m = fit_size(len(self.y))
        if self._fit is None or self._fit[0] != m:
            model = GaussianProcess(x.shape[1], dim_scaled=self.dim_scaled)
            model.fit(x[:m], self._targets(self.y[:m]), maxiter=100 if m <= 100 else 50)
            self._fit = (m, model.theta)
        return self._fit[1]

    def _from_model(self, rng: np.random.Generator) -> Params:
        import torch

        from hpt_auto.gp import GaussianProcess, log_ei

        x = np.vstack(self.x)
        z = self._targets(self.y)
        best = float(z.min())
        gp = GaussianProcess(x.shape[1], dim_scaled=self.dim_scaled)
        gp.theta = self._hyperparameters(x)
        pending = [p for ps in self.pending.values() for p in ps]  # constant liar: told the best loss so far
        gp.condition_on(np.vstack([x, *pending]), np.concatenate([z, np.full(len(pending), best)]))

        def acquisition(rows: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return log_ei(gp, torch.as_tensor(rows, dtype=torch.float64), best).numpy()

        candidates = self._candidates(rng, x, z)
        scores = acquisition(candidates)
        starts = np.vstack([candidates[np.argsort(-scores)[: self.n_refine]], x[int(np.argmin(z))]])
        refined = self._refine(gp, best, starts)  # the incumbent too: exploitation
        finals = [self._snap(row, acquisition) for row in refined]
        finals.sort(key=lambda pair: -pair[1])
        for params, _ in finals:
            if self._unseen(params):
                return params
        for i in np.argsort(-scores):
            params = self.encoding.decode(candidates[i])
            if self._unseen(params):
                return params
        return self._random_unseen(rng)

    def _candidates(self, rng: np.random.Generator, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Uniform candidates, and perturbations of the best points seen (local search around the incumbents)."""
        n_local = self.n_candidates // 2
        uniform = self.encoding.from_units(rng.random((self.n_candidates - n_local, len(self.encoding.names))))
        top = x[np.argsort(z)[: min(5, len(z))]]
        local = top[rng.integers(len(top), size=n_local)].copy()
        cols = self.encoding.numeric_columns
        scale = rng.choice([0.01, 0.05, 0.2], size=(n_local, 1))
        local[:, cols] = np.clip(local[:, cols] + scale * rng.normal(size=(n_local, len(cols))), 0.0, 1.0)
        for name in self.encoding.names:  # each categorical resampled with probability 1 / parameters
            param, where = self.space[name], self.encoding.slices[name]
            if isinstance(param, Categorical):
                flip = rng.random(n_local) < 1.0 / len(self.encoding.names)
                local[flip, where] = 0.0
                local[np.flatnonzero(flip), where.start + rng.integers(len(param.choices), size=int(flip.sum()))] = 1.0
        return np.vstack([uniform, local])

    def _refine(self, gp: Any, best: float, rows: np.ndarray) -> np.ndarray:
        """L-BFGS-B on the numeric coordinates of the start rows at once (their log EIs summed: each row's
        gradient is its own), the categoricals held; one batched model call per step instead of one per row."""
        import torch
        from scipy.optimize import minimize

        from hpt_auto.gp import log_ei

        cols = self.encoding.numeric_columns
        if len(cols) == 0:
            return rows
        base = torch.as_tensor(rows, dtype=torch.float64)

        def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
            t = torch.tensor(u.reshape(len(rows), len(cols)), dtype=torch.float64, requires_grad=True)
            full = base.clone()
            full[:, cols] = t
            value = -log_ei(gp, full, best).sum()
            value.backward()
            return float(value.detach()), np.nan_to_num(t.grad.numpy().ravel())

        start = rows[:, cols].ravel()
        result = minimize(
            objective, start, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(start), options={"maxiter": 50}
        )
        out = rows.copy()
        if np.all(np.isfinite(result.x)):
            out[:, cols] = result.x.reshape(len(rows), len(cols))
        return out

    def _snap(self, row: np.ndarray, acquisition: Any) -> tuple[Params, float]:
        """Valid params for a refined row, with each categorical's other choices tried on it."""
        params = self.encoding.decode(row)
        best_row = self.encoding.encode(params)
        best_score = float(acquisition(best_row[None])[0])
        for name in self.encoding.names:
            param = self.space[name]
            if not isinstance(param, Categorical) or name not in params:
                continue
            options = []
            for choice in param.choices:
                trial = dict(params, **{name: choice})
                options.append((self.space.decode(self._units(trial)), choice))
            rows = np.vstack([self.encoding.encode(p) for p, _ in options])
            scores = acquisition(rows)
            i = int(np.argmax(scores))
            if scores[i] > best_score:
                params, best_row, best_score = options[i][0], rows[i], float(scores[i])
        return params, best_score

    def _units(self, params: Params) -> list[float]:
        """The unit-cube point of params with inactive parameters at mid-range (to re-apply conditions)."""
        return [self.space[n].encode(params[n]) if n in params else 0.5 for n in self.encoding.names]


def fit_size(n: int) -> int:
    """How many of `n` told trials the GP's hyperparameters are fitted on (all up to 60, then in 5 % steps)."""
    return n if n <= 60 else n - n % (n // 20)


def _multi_objective(space: Space, directions: Sequence[str], seed: int | None) -> Strategy:
    from hpt.plugins import registry

    try:
        return registry().create("strategy", "nsga2", space, directions=directions, seed=seed)
    except PluginError:
        return registry().create("strategy", "random", space, directions=directions, seed=seed)
