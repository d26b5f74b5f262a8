"""Population training in the mlp backend: a batch of configurations trained as one stack must train each
member as it would train alone, whatever hyperparameters they differ in, and keep members apart (dropout,
pruning, budgets, checkpoints). Each member's curve is compared with plain PyTorch (`test_torch_reference`)."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from hpt.backend import TrialContext, TrialPruned  # noqa: E402
from hpt.cli import cli  # noqa: E402
from hpt.errors import HptError  # noqa: E402
from hpt_torch.backend import MLPBackend, micro_batch_groups  # noqa: E402
from hpt_torch.engine import auto_batch_trials  # noqa: E402
from hpt_torch.hyperparams import resolve  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from test_torch_reference import assert_same_curve, reference  # noqa: E402

BASE = {"n_hidden": 2, "n_neurons": 16, "activation": "tanh", "batch_size": 32, "max_epochs": 8, "patience": 1}
ADAM_MEMBERS = [
    {**BASE, "optimizer": "adam", "learning_rate": 0.01},
    {**BASE, "optimizer": "adam", "learning_rate": 0.003, "l2": 1e-3, "lr_schedule": "step", "n_neurons": 12},
    {**BASE, "optimizer": "adamw", "learning_rate": 0.005, "l2": 1e-2, "init": "xavier", "lr_schedule": "exponential"},
]


def contexts(n, first_seed=7, **kwargs):
    return [TrialContext(i, seed=first_seed + i, **kwargs) for i in range(n)]


def alone(backend, params, ctx_like, budget=None):
    """The member's curve trained by plain PyTorch (`test_torch_reference.reference`)."""
    return reference(backend, params, ctx_like.seed, until=budget)


def test_evaluate_batch_of_the_default_space_matches_training_alone():
    """Random default-space suggestions (on a CPU a batch trains one trial after another)."""
    backend = MLPBackend(dataset="iris", max_epochs=3)
    rng = np.random.default_rng(3)
    members = [{**backend.default_space().sample(rng), "dropout": 0.0} for _ in range(6)]
    ctxs = contexts(6)
    results = backend.evaluate_batch(members, [None] * 6, ctxs)
    stacked = contexts(6)
    backend.evaluate_population([resolve(p) for p in members], [None] * 6, stacked)  # one stack, as on a GPU
    for params, ctx, one_stack, result in zip(members, ctxs, stacked, results, strict=True):
        curve, best = alone(backend, params, ctx)
        assert result.value == pytest.approx(best["valid_loss"], rel=1e-4, abs=1e-5)
        assert_same_curve(ctx.reports, curve)
        assert_same_curve(one_stack.reports, curve)


def test_auto_batch_trials_picks_k_by_device():
    assert auto_batch_trials("cpu") == 1  # measured: stacking gains little over stacks of one on a CPU
    assert auto_batch_trials("cuda:1") == 64
    assert auto_batch_trials("auto") >= 1


def test_micro_batch_groups_put_together_batch_sizes_that_share_a_micro_batch():
    assert micro_batch_groups([64, 32, 256, 48, 96, 128]) == [[1, 0, 4, 5, 2], [3]]  # 48 is no multiple of 32


def test_dropout_rates_are_per_member():
    backend = MLPBackend(dataset="iris")
    members = [
        {**ADAM_MEMBERS[0], "patience": 10},
        {**ADAM_MEMBERS[1], "patience": 10, "dropout": 0.3},
        {**ADAM_MEMBERS[1], "patience": 10, "dropout": 0.2, "activation": "selu", "n_hidden": 1},
    ]
    ctxs = contexts(3)
    backend.evaluate_population([resolve(p) for p in members], [3, 3, 3], ctxs)
    assert_same_curve(ctxs[0].reports, alone(backend, members[0], ctxs[0], budget=3)[0])  # rate 0: untouched
    without = alone(backend, {**members[1], "dropout": 0.0}, ctxs[1], budget=3)[0]
    assert ctxs[1].reports[0][1]["train_loss"] != pytest.approx(without[0][1]["train_loss"], rel=1e-3)


def test_pruning_budgets_and_checkpoints_are_per_member(tmp_path):
    backend = MLPBackend(dataset="iris")
    members = [dict(ADAM_MEMBERS[0], patience=20), dict(ADAM_MEMBERS[1], patience=20), ADAM_MEMBERS[2]]
    ctxs = [
        TrialContext(i, seed=3 + i, checkpoint_dir=tmp_path / f"trial-{i}", stop_rule=rule)
        for i, rule in enumerate([None, lambda step, metrics: step >= 2, None])
    ]
    results = backend.evaluate_population([resolve(p) for p in members], [4, 6, 2], ctxs)
    assert isinstance(results[1], TrialPruned)
    assert [len(ctx.reports) for ctx in ctxs] == [4, 2, 2]
    assert all((tmp_path / f"trial-{i}" / "mlp.pt").is_file() for i in range(3))

    # a member continued to a larger budget, alone, picks up the batch's checkpoint exactly
    continued = TrialContext(0, seed=3, checkpoint_dir=tmp_path / "trial-0")
    backend.evaluate(members[0], 7, continued)
    straight = alone(backend, members[0], TrialContext(0, seed=3), budget=7)[0]
    assert [s for s, _ in continued.reports] == [5, 6, 7]
    assert_same_curve(continued.reports, straight[4:])

    # and continuing a batch from the checkpoints also matches
    again = [TrialContext(i, seed=3 + i, checkpoint_dir=tmp_path / f"trial-{i}") for i in (0, 2)]
    results = backend.evaluate_population([resolve(members[0]), resolve(members[2])], [7, 4], again)
    straight2, best2 = alone(backend, members[2], TrialContext(2, seed=5), budget=4)
    assert [s for s, _ in again[1].reports] == [3, 4]
    assert_same_curve(again[1].reports, straight2[2:])
    assert results[1].value == pytest.approx(best2["valid_loss"], rel=1e-4, abs=1e-5)


def test_folds_and_invalid_members_of_a_batch():
    """With k folds each trial is a stack of k members (one per fold, seeds seed + fold); a bad configuration
    fails alone."""
    backend = MLPBackend(dataset="iris", folds=2)
    members = [ADAM_MEMBERS[0], ADAM_MEMBERS[1], {**BASE, "optimizer": "lbfgs"}]
    ctxs = contexts(3)
    results = backend.evaluate_batch(members, [2, 2, 2], ctxs)
    assert isinstance(results[2], HptError) and "'optimizer'" in str(results[2])
    for index in (0, 1):
        folds = [reference(backend, members[index], ctxs[index].seed + f, until=2, fold=f)[0] for f in range(2)]
        assert [s for s, _ in ctxs[index].reports] == [1, 2]
        for epoch, got in ctxs[index].reports:
            want = np.mean([c[epoch - 1][1]["valid_loss"] for c in folds])
            assert got["valid_loss"] == pytest.approx(want, rel=1e-4, abs=1e-5)
        assert results[index].value == pytest.approx(min(m["valid_loss"] for _, m in ctxs[index].reports))


@pytest.mark.slow
def test_cli_batch_trials_of_the_default_space_log_one_child_run_with_its_own_curve_per_member(tmp_path):
    uri = f"sqlite:///{tmp_path}/batch.db"
    args = ["run", "--strategy", "random", "--batch-trials", "4", "--trials", "8", "--dataset", "iris"]
    args += ["--set", "max_epochs=3", "--set", "patience=5", "--tracking-uri", uri, "--seed", "1", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("hpt").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8
    curves = []
    for child in children:
        history = sorted(client.get_metric_history(child.info.run_id, "valid_loss"), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2, 3]
        assert child.data.metrics["objective"] == pytest.approx(min(m.value for m in history))
        curves.append(tuple(m.value for m in history))
    assert len(set(curves)) == 8
    assert len({c.data.params["n_neurons"] for c in children}) == 8  # nothing pinned: the members differ
