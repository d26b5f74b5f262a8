"""`hpt run --resume` continues the search: the resumed study proposes no configuration it already has.
(Every strategy's resume is checked in memory by tests/test_contracts.py; these go through the CLI and MLflow.)"""

from __future__ import annotations

import pytest
from conftest import child_runs, invoke_json


@pytest.mark.parametrize("strategy", ["random", "deap", "cmaes", "hyperband"])
def test_a_resumed_study_repeats_no_finished_configuration(store, strategy):
    args = ["--backend", "function", "--function", "hartmann6", "--tracking-uri", store]
    first = invoke_json("run", *args, "--strategy", strategy, "--trials", "6")
    invoke_json("run", "--resume", first["parent_run_id"], "--trials", "14", "--tracking-uri", store)
    configs = [tuple(sorted(r.data.params.items())) for r in child_runs(store, first["parent_run_id"])]
    assert len(configs) == 14
    assert len(set(configs)) == 14
