"""Bayesian optimisation through `skopt.Optimizer` (GP, or random-forest / extra-trees / GBRT surrogates).

How the study loop's contract maps onto scikit-optimize:
- Tells are buffered and the model is refitted once at the next ask on every told trial, so a
  resumed study (hundreds of replayed tells) fits the surrogate once instead of once per trial.
- Each refit is a fresh `Optimizer` told every trial, which is otherwise what `gp_minimize`
  runs: the same GP (Matern 5/2, Gaussian noise), 10 random initial points, gp_hedge over
  EI/PI/LCB, L-BFGS acquisition from 10000 random candidates. gp_hedge's gains and last
  candidates are handed from one refit to the next, so the portfolio learns which acquisition
  function proposes the best points as `gp_minimize`'s does (a resumed study starts them afresh).
- With `warp` (the default) the surrogate sees log-warped losses, log1p((y - min) / median gap):
  the order is kept, but a few huge losses (a diverged training run, the walls of Rosenbrock's
  valley) no longer flatten the model around the good region. It is on from the first fit:
  on the benchmark functions it helps from 20 trials on (Rosenbrock, Ackley, Branin); on the
  others its effect is within the spread between seeds.
- Pending trials (asked, not told) are covered by a constant liar: the model is refitted with
  every pending point told at the best loss seen so far ("cl_min"), so parallel asks get distinct
  points away from each other. Without pending points the optimizer's own proposal is used.
- A configuration already finished or pending is never handed out again while another can be: where the
  model proposes one (an optimum on the box's corner, where L-BFGS ends every time), the next best by the
  model is taken (the other acquisition functions' proposals, then random candidates ranked by EI).
  scikit-optimize's own replacement was a random point: on a 2-D corner optimum half of 24 trials went
  to random points (4 to 6 of the 18 after the initial design near the corner against 12 to 14 now).
- A failed trial is told as the worst loss seen so far: failures in network training cluster in
  regions (a learning rate that diverges), and a penalty steers the model away from them, where
  skipping them would let it propose the same region again.
- Ask latency stays bounded as trials grow: once `warm_after` trials (100) are told, the GP starts
  its hyperparameter fit from the previous fit's kernel with no random restarts, and the
  acquisition optimiser runs fewer L-BFGS restarts (`n_restarts`, halved) from fewer random
  candidates (scoring a candidate costs O(trials^2) in scikit-optimize's GP, so their number
  shrinks with the square of the trials, down to a floor of 1000); only the latest model is kept,
  so memory does not grow either. Past `hold_after` trials the kernel's hyperparameters are fitted
  again only each time the trials have grown by 5 % since the last fit; the asks between update the
  posterior on the held kernel (as `auto`'s GP does past 60 trials). Bounding from 40 trials on
  instead cost quality: on Dixon-Price-10, 60 trials without it beat 60 with it on 8 seeds of 8.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hpt.errors import PluginError
from hpt.space import Params, Space
from hpt.strategy import Strategy
from hpt.trial import Suggestion, Trial
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.gaussian_process.kernels import WhiteKernel
from skopt import Optimizer
from skopt.learning import GaussianProcessRegressor, GradientBoostingQuantileRegressor
from threadpoolctl import threadpool_limits

from hpt_skopt.dimensions import Point, SkoptSpace

SURROGATES = {"gp": "GP", "rf": "RF", "et": "ET", "gbrt": "GBRT"}
ACQUISITIONS = ("EI", "PI", "LCB", "gp_hedge")
ACQ_OPTIMIZERS = ("auto", "lbfgs", "sampling")
REFIT_GROWTH = 1.05
"""Past `hold_after` trials, the kernel's hyperparameters are fitted again once the trials grow by this factor."""


def _choice(option: str, value: Any, allowed: Sequence[str] | Mapping[str, str]) -> str:
    for name in allowed:
        if str(value).lower() == name.lower():
            return name
    raise PluginError(f"strategy 'skopt': {option}={value!r} is not supported; use one of {', '.join(allowed)}")


def _count(option: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < minimum:
        raise PluginError(f"strategy 'skopt': {option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _QuantileGBRT(GradientBoostingQuantileRegressor):
    """scikit-optimize's GBRT surrogate made usable with current libraries: declared a regressor the way
    scikit-learn >= 1.6 checks it, and its spread predicted without `np.in1d` (gone in NumPy 2.4)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        return tags

    def predict(self, X, return_std=False, return_quantiles=False):
        if not return_std or return_quantiles:
            return super().predict(X, return_std=return_std, return_quantiles=return_quantiles)
        low, mean, high = (self.regressors_[self.quantiles.index(q)].predict(X) for q in (0.16, 0.5, 0.84))
        return mean, (high - low) / 2.0


class _GaussianProcess(GaussianProcessRegressor):
    """scikit-optimize's GP with its predictive variance computed by a matrix product: its own three-operand
    einsum runs without BLAS, O(candidates x trials^2) scalar steps, most of an ask's time past 100 trials."""

    def predict(self, X, return_std=False, return_cov=False, return_mean_grad=False, return_std_grad=False):
        if not return_std or return_cov or return_mean_grad or not hasattr(self, "X_train_"):
            return super().predict(X, return_std, return_cov, return_mean_grad, return_std_grad)
        K_trans = self.kernel_(X, self.X_train_)
        y_mean = self.y_train_std_ * K_trans.dot(self.alpha_) + self.y_train_mean_
        y_var = self.kernel_.diag(X) - np.einsum("ki,ki->k", K_trans @ self.K_inv_, K_trans)
        return y_mean, np.sqrt(np.maximum(y_var, 0.0) * self.y_train_std_**2)


def _key(params: Mapping[str, Any]) -> str:
    return repr(sorted(params.items()))


class SkoptStrategy(Strategy):
    """Gaussian-process (or tree-ensemble) Bayesian optimisation with scikit-optimize.

    Options:
        surrogate: the model: gp, rf, et or gbrt.
        acq: the acquisition function: EI, PI, LCB or gp_hedge.
        n_initial_points: random points before the model is used.
        acq_optimizer: how the acquisition is maximised: auto, lbfgs or sampling.
        n_points: random candidates scored per ask.
        n_restarts: L-BFGS runs per ask.
        warm_after: trials told before fits are warm-started and cheapened, to bound ask latency.
        hold_after: trials told before the kernel's hyperparameters are fitted only in 5 % steps.
        warp: model log-warped losses.
    """

    name = "skopt"
    multi_objective = False

    def __init__(
        self,
        space: Space,
        *,
        directions: Sequence[str] = ("minimize",),
        seed: int | None = None,
        surrogate: str = "gp",
        acq: str = "gp_hedge",
        n_initial_points: int = 10,
        acq_optimizer: str = "auto",
        n_points: int = 10000,
        n_restarts: int = 5,
        warm_after: int = 100,
        hold_after: int = 100,
        warp: bool = True,
    ) -> None:
        super().__init__(space, directions=directions, seed=seed)
        if not space.tunable_names:
            raise PluginError("strategy 'skopt': the space has nothing to tune (every parameter is fixed)")
        self.surrogate = _choice("surrogate", surrogate, SURROGATES)
        self.acq = _choice("acq", acq, ACQUISITIONS)
        self.acq_optimizer = _choice("acq_optimizer", acq_optimizer, ACQ_OPTIMIZERS)
        if self.acq_optimizer == "lbfgs" and self.surrogate != "gp":
            raise PluginError(f"strategy 'skopt': acq_optimizer=lbfgs needs surrogate=gp, not {self.surrogate}")
        self.n_initial_points = _count("n_initial_points", n_initial_points, 1)
        self.n_points = _count("n_points", n_points, 1)
        self.n_restarts = _count("n_restarts", n_restarts, 1)
        self.warm_after = _count("warm_after", warm_after, 1)
        self.hold_after = _count("hold_after", hold_after, 1)
        self._fitted_at = 0  # trials told at the last fit of the kernel's hyperparameters
        if not isinstance(warp, bool):
            raise PluginError(f"strategy 'skopt': warp must be true or false, got {warp!r}")
        self.warp = warp
        self.mapping = SkoptSpace(space)
        self.base_seed = int(self.rng.integers(2**31 - 1))
        self.told_points: list[Point] = []  # what the model is fitted on, failures included
        self.told_losses: list[float] = []  # their losses as told (a failure: the worst loss then)
        self._completed: list[tuple[Point, float]] = []  # told, waiting for the next ask
        self._failed: list[Point] = []  # told failed, waiting for a loss to penalise them with
        self._pending: dict[str, list[Point]] = {}  # params key -> points asked and not told yet
        self._finished: set[str] = set()  # params keys told
        self.repeats_avoided = 0  # proposals of a finished or pending configuration, replaced by the next best
        self.optimizer = self._new_optimizer(self.n_initial_points)

    def _new_optimizer(self, n_initial_points: int) -> Optimizer:
        optimizer = Optimizer(
            self.mapping.dimensions,
            base_estimator=self._surrogate(),
            n_initial_points=n_initial_points,
            acq_func=self.acq,
            acq_optimizer=self.acq_optimizer,
            acq_optimizer_kwargs={"n_points": self.n_points, "n_restarts_optimizer": self.n_restarts},
            random_state=self._stream(0),
            model_queue_size=1,
            avoid_duplicates=False,  # a repeat is replaced by the model's next best in `_unseen`, not at random
        )
        if type(optimizer.base_estimator_) is GaussianProcessRegressor:  # the one scikit-optimize cooked
            optimizer.base_estimator_ = _GaussianProcess(**optimizer.base_estimator_.get_params(deep=False))
        return optimizer

    def _stream(self, salt: int) -> int:
        """A random state for this ask, from (seed, trials told, trials pending): a resumed study draws what
        the uninterrupted one would have drawn, instead of restarting one stream from the beginning."""
        pending = sum(len(xs) for xs in self._pending.values())
        return int(np.random.default_rng([self.base_seed, self.told, pending, salt]).integers(2**31 - 1))

    def _surrogate(self) -> str | _QuantileGBRT:
        if self.surrogate != "gbrt":
            return SURROGATES[self.surrogate]
        gbrt = GradientBoostingRegressor(n_estimators=30, loss="quantile")  # scikit-optimize's own settings
        return _QuantileGBRT(base_estimator=gbrt, random_state=self._stream(1))

    @property
    def told(self) -> int:
        """Trials the optimizer has been told, including those waiting for the next ask."""
        return len(self.told_losses) + len(self._completed) + len(self._failed)

    def tell(self, trial: Trial) -> None:
        point = self.mapping.to_point(trial.params)
        self._finished.add(_key(trial.params))
        waiting = self._pending.get(_key(trial.params))
        if waiting:
            waiting.pop(0)
        loss = self.loss(trial)
        if loss is None:
            self._failed.append(point)
        else:
            self._completed.append((point, float(loss)))

    def ask(self, n: int = 1) -> list[Suggestion]:
        # One BLAS thread: the GP's matrices are small, and threads that fight over busy cores made
        # each fit several times slower (measured under load on 2 cores).
        with threadpool_limits(limits=1, user_api="blas"):
            self._flush()
            out = []
            for _ in range(n):
                point, optimizer = self._propose()
                params = self._unseen(self.mapping.to_params(point), optimizer)
                self._pending.setdefault(_key(params), []).append(self.mapping.to_point(params))
                out.append(Suggestion(params))
        return out

    def _seen(self, params: Params) -> bool:
        key = _key(params)
        return key in self._finished or bool(self._pending.get(key))

    def _unseen(self, params: Params, optimizer: Optimizer) -> Params:
        """The proposal when it is new; where the model proposes a configuration already finished or pending
        (an optimum on the box's corner, a discrete space, a resumed study), the next best by the model, and
        a random new configuration only where the model has none to offer."""
        self.repeats_avoided += self._seen(params)
        if not self._seen(params):
            return params
        for point in self._ranked(optimizer):
            params = self.mapping.to_params(point)
            if not self._seen(params):
                return params
        for attempt in range(100):
            point = self.optimizer.space.rvs(random_state=self._stream(3 + attempt))[0]
            params = self.mapping.to_params(point)
            if not self._seen(params):
                return params
        return params  # fewer configurations than trials: a repeat cannot be avoided

    def _ranked(self, optimizer: Optimizer) -> list[Point]:
        """Candidates best first by the fitted model's acquisition: the other acquisition functions' proposals
        (gp_hedge), then random points (`n_points`, at most 2000) scored by EI (or the chosen function)."""
        if not optimizer.models or not optimizer.yi:
            return []
        from skopt.acquisition import _gaussian_acquisition

        space, model = optimizer.space, optimizer.models[-1]
        rows = list(getattr(optimizer, "next_xs_", []))
        sampled = space.rvs(n_samples=min(optimizer.n_points, 2000), random_state=self._stream(4))
        transformed = space.transform(sampled)
        values = _gaussian_acquisition(
            X=transformed,
            model=model,
            y_opt=np.min(optimizer.yi),
            acq_func="EI" if self.acq == "gp_hedge" else self.acq,
            acq_func_kwargs=optimizer.acq_func_kwargs,
        )
        rows += [transformed[i] for i in np.argsort(values)]
        return [space.inverse_transform(np.reshape(row, (1, -1)))[0] for row in rows]

    def _flush(self) -> None:
        """Refit on every told trial, buffered tells included: one model fit however many arrived."""
        new, self._completed = self._completed, []
        known = [y for _, y in new] + self.told_losses
        if self._failed and known:
            new += [(x, max(known)) for x in self._failed]
            self._failed = []
        if not new:
            return
        self.told_points += [x for x, _ in new]
        self.told_losses += [y for _, y in new]
        previous, self.optimizer = self.optimizer, self._new_optimizer(self.n_initial_points)
        self._carry_hedge(previous)
        if len(self.told_losses) >= self.warm_after:
            self._warm_start(previous)
        self.optimizer.tell(self.told_points, self._model_losses())

    def _carry_hedge(self, previous: Optimizer) -> None:
        """Hand gp_hedge's portfolio state to the refitted optimizer: the gains so far, and the last
        candidates of each acquisition function, which the refit scores under the new model to update
        the gains (as `gp_minimize` does at every step); without them the gains would stay zero and
        every ask would pick EI, PI or LCB uniformly at random."""
        if hasattr(previous, "gains_"):
            self.optimizer.gains_ = np.copy(previous.gains_)
        if hasattr(previous, "next_xs_"):
            self.optimizer.next_xs_ = previous.next_xs_

    def _model_losses(self) -> list[float]:
        """The losses the surrogate sees: as told, or log-warped (rank-preserving) when `warp` is on."""
        y = np.asarray(self.told_losses, dtype=float)
        if not self.warp:
            return y.tolist()
        gap = y - y.min()
        scale = np.median(gap) or 1.0
        return np.log1p(gap / scale).tolist()

    def _warm_start(self, previous: Optimizer) -> None:
        """Start the fit from the last fitted kernel without restarts, and cheapen the acquisition."""
        told = len(self.told_losses)
        self.optimizer.n_restarts_optimizer = max(1, self.n_restarts // 2)
        self.optimizer.n_points = max(min(self.n_points, 1000), int(self.n_points * (self.warm_after / told) ** 2))
        last = previous.models[-1] if previous.models else None
        held = told >= self.hold_after and told < self._fitted_at * REFIT_GROWTH
        if not held:
            self._fitted_at = told  # this fit (warm or, after a resume, from scratch) fits the hyperparameters
        if not isinstance(last, GaussianProcessRegressor):
            return
        kernel = clone(last.kernel_)
        if last.noise_ is not None and isinstance(getattr(kernel, "k2", None), WhiteKernel):
            kernel.k2.set_params(noise_level=max(last.noise_, 1e-5))  # the fit zeroed it for prediction
        self.optimizer.base_estimator_ = clone(last).set_params(
            kernel=kernel, n_restarts_optimizer=0, optimizer=None if held else "fmin_l_bfgs_b"
        )

    def _propose(self) -> tuple[Point, Optimizer]:
        """The model's proposal and the optimizer that made it (the liar's, with pending trials)."""
        pending = [x for xs in self._pending.values() for x in xs]
        if not pending:
            with warnings.catch_warnings():  # "evaluated at point ... before": `_unseen` replaces it
                warnings.simplefilter("ignore", UserWarning)
                return self.optimizer.ask(), self.optimizer
        if self.told + len(pending) < self.n_initial_points or not self.optimizer.yi:
            return self.optimizer.space.rvs(random_state=self._stream(2))[0], self.optimizer
        liar = self._new_optimizer(0)  # fitted at once: the real optimizer decided the model may be used
        liar.base_estimator_ = self.optimizer.base_estimator_  # same (maybe warm-started) model and budget
        liar.n_points, liar.n_restarts_optimizer = self.optimizer.n_points, self.optimizer.n_restarts_optimizer
        if self.acq == "gp_hedge" and hasattr(self.optimizer, "gains_"):
            liar.gains_ = np.copy(self.optimizer.gains_)
        lie = float(np.min(self.optimizer.yi))
        liar.tell(list(self.optimizer.Xi) + pending, list(self.optimizer.yi) + [lie] * len(pending))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return liar.ask(), liar
