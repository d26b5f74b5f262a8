"""Every built-in strategy and backend, and the example plugin's strategy, keep the contracts that
`hpt.testing` checks (the same checks offered to plugin authors)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hpt.plugins import registry
from hpt.testing import check_backend, check_strategy

SINGLE = ["random", "grid", "successive-halving", "hyperband", "asha", "deap", "cmaes", "halton"]
EXACT_RESUME = {"random", "grid", "deap", "cmaes", "halton"}
OPTIONS = {
    "grid": {"shuffle": True},  # in order, the first 12 points differ only in the last parameters
    "successive-halving": {"min_budget": 1, "max_budget": 4, "eta": 2},
    "hyperband": {"min_budget": 1, "max_budget": 4, "eta": 2},
    "asha": {"min_budget": 1, "max_budget": 4, "eta": 2},
    "deap": {"population": 6, "elite": 1},
    "cmaes": {"population": 6},
}


def _factory(name: str):
    def make(space, **kwargs):
        return registry().create("strategy", name, space, **kwargs, **OPTIONS.get(name, {}))

    return make


@pytest.mark.parametrize("name", SINGLE)
def test_strategy_contract(name):
    check_strategy(_factory(name), exact_resume=name in EXACT_RESUME)


def test_multi_objective_strategy_contract():
    check_strategy(_factory("nsga2"), directions=("minimize", "maximize"), exact_resume=True)
    check_strategy(_factory("random"), directions=("minimize", "maximize"), exact_resume=True)


def test_skopt_strategy_contract():
    pytest.importorskip("skopt")
    check_strategy(_factory("skopt"))


def test_function_backend_contract():
    check_backend(registry().create("backend", "function", function="branin"), budget=2)
    check_backend(registry().create("backend", "function", function="mixed", epochs=2))


def test_mlp_backend_contract():
    pytest.importorskip("torch")
    check_backend(registry().create("backend", "mlp", dataset="iris", max_epochs=2), budget=2)


def test_a_broken_strategy_fails_with_a_clear_message():
    from hpt.strategy import Strategy
    from hpt.trial import Suggestion

    class Forgetful(Strategy):  # draws from one stream: a resumed study starts it over
        name = "forgetful"

        def ask(self, n=1):
            return [Suggestion(self.space.sample(self.rng)) for _ in range(n)]

    class OffGrid(Strategy):  # ignores the integer's step
        name = "off-grid"

        def ask(self, n=1):
            return [Suggestion({**self.space.sample(self.rng_for(0)), "units": 17}) for _ in range(n)]

    with pytest.raises(AssertionError, match="after a resume, trial 6 repeats finished trial 0"):
        check_strategy(Forgetful)
    with pytest.raises(AssertionError, match=r"'off-grid' \(valid points\): parameter 'units': 17 is outside"):
        check_strategy(OffGrid)


def test_a_backend_that_cannot_be_pickled_fails_with_a_clear_message():
    from hpt.backend import CallableBackend
    from hpt.space import Float, Space

    backend = CallableBackend(lambda p: p["x"], Space({"x": Float(0, 1)}))
    with pytest.raises(AssertionError, match="cannot be pickled"):
        check_backend(backend)


def test_hpt_testing_imports_no_heavy_library():
    code = "import sys, hpt.testing; print(sorted(m for m in ('mlflow', 'torch', 'skopt', 'deap') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
