"""Population training in the mlp backend: a batch of configurations trained as one stacked model must
train each member as it would train alone, and keep members apart (divergence, pruning, budgets)."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from hpt.backend import Result, TrialContext, TrialPruned  # noqa: E402
from hpt.cli import cli  # noqa: E402
from hpt.errors import HptError  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.hyperparams import resolve  # noqa: E402
from hpt_torch.population import group_key  # noqa: E402
from hpt_torch.stacked_optim import FAMILIES  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

BASE = {"n_hidden": 2, "n_neurons": 16, "activation": "tanh", "batch_size": 32, "max_epochs": 8, "patience": 1}
SGD_MEMBERS = [
    {**BASE, "optimizer": "momentum", "learning_rate": 0.05, "momentum": 0.9},
    {**BASE, "optimizer": "momentum", "learning_rate": 0.02, "momentum": 0.7, "l2": 1e-3, "n_neurons": 24},
    {**BASE, "optimizer": "nesterov", "learning_rate": 0.03, "momentum": 0.8, "l1": 1e-4, "lr_schedule": "cosine"},
    {**BASE, "optimizer": "sgd", "learning_rate": 0.1, "layer_shape": "pyramid", "init": "he", "warmup_epochs": 2},
]
ADAM_MEMBERS = [
    {**BASE, "optimizer": "adam", "learning_rate": 0.01},
    {**BASE, "optimizer": "adam", "learning_rate": 0.003, "l2": 1e-3, "lr_schedule": "step", "n_neurons": 12},
    {**BASE, "optimizer": "adamw", "learning_rate": 0.005, "l2": 1e-2, "init": "xavier", "lr_schedule": "exponential"},
]
OTHER_MEMBERS = [
    {**BASE, "optimizer": "rmsprop", "learning_rate": 0.003},
    {**BASE, "optimizer": "rmsprop", "learning_rate": 0.001, "l2": 1e-3, "init": "lecun"},
    {**BASE, "optimizer": "adagrad", "learning_rate": 0.05},
    {**BASE, "optimizer": "adagrad", "learning_rate": 0.02, "l1": 1e-4, "n_neurons": 20},
]


def contexts(n, first_seed=7, **kwargs):
    return [TrialContext(i, seed=first_seed + i, **kwargs) for i in range(n)]


def alone(backend, params, ctx_like, budget=None):
    """The member trained by itself, as `hpt run` without --batch-trials does."""
    ctx = TrialContext(ctx_like.number, seed=ctx_like.seed, checkpoint_dir=ctx_like.checkpoint_dir)
    try:
        return backend.evaluate(params, budget, ctx), ctx
    except Exception as exc:
        return exc, ctx


def assert_same_curves(batched_ctx, alone_ctx):
    assert [step for step, _ in batched_ctx.reports] == [step for step, _ in alone_ctx.reports]
    for (_, got), (_, want) in zip(batched_ctx.reports, alone_ctx.reports, strict=True):
        assert set(got) == set(want)
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


@pytest.mark.parametrize(
    ("dataset", "members"),
    [
        ("iris", SGD_MEMBERS + ADAM_MEMBERS + OTHER_MEMBERS),
        ("breast_cancer", SGD_MEMBERS[:2] + ADAM_MEMBERS[:2]),
        ("diabetes", ADAM_MEMBERS[:2] + SGD_MEMBERS[1:3]),
    ],
)
def test_each_member_of_a_batch_trains_as_it_would_alone(dataset, members):
    backend = MLPBackend(dataset=dataset, size=120)
    n_train = len(backend.folds[0].y_train)
    keys = [group_key(resolve(p), n_train) for p in members]
    assert all(keys.count(key) >= 2 for key in keys)  # every member shares a stack with another

    ctxs = contexts(len(members))
    results = backend.evaluate_batch(members, [None] * len(members), ctxs)
    for params, ctx, result in zip(members, ctxs, results, strict=True):
        expected, expected_ctx = alone(backend, params, ctx)
        assert isinstance(result, Result), result
        assert_same_curves(ctx, expected_ctx)
        assert result.value == pytest.approx(expected.value, rel=1e-4, abs=1e-5)
        assert {k: result.metrics[k] for k in ("best_epoch", "epochs", "n_params")} == {
            k: expected.metrics[k] for k in ("best_epoch", "epochs", "n_params")
        }
    assert len({len(ctx.reports) for ctx in ctxs}) > 1  # early stopping ended some members before others


@pytest.mark.parametrize("activation", ["sigmoid", "selu", "gelu", "elu", "leaky_relu"])
def test_narrower_members_padded_into_a_wider_stack_train_as_alone(activation):
    """Padded units must feed nothing downstream, also where activation(0) != 0 (sigmoid)."""
    backend = MLPBackend(dataset="iris")
    members = [{**p, "activation": activation, "max_epochs": 3} for p in ADAM_MEMBERS[:2]]
    members[1]["layer_shape"] = "pyramid"
    ctxs = contexts(2)
    backend.evaluate_batch(members, [None, None], ctxs)
    for params, ctx in zip(members, ctxs, strict=True):
        assert_same_curves(ctx, alone(backend, params, ctx)[1])


def test_dropout_rates_are_per_member():
    backend = MLPBackend(dataset="iris")
    members = [{**ADAM_MEMBERS[0], "patience": 10}, {**ADAM_MEMBERS[1], "patience": 10, "dropout": 0.3}]
    ctxs = contexts(2)
    backend.evaluate_batch(members, [3, 3], ctxs)
    assert_same_curves(ctxs[0], alone(backend, members[0], ctxs[0], budget=3)[1])  # rate 0: untouched
    without = alone(backend, {**members[1], "dropout": 0.0}, ctxs[1], budget=3)[1]
    assert ctxs[1].reports[0][1]["train_loss"] != pytest.approx(without.reports[0][1]["train_loss"], rel=1e-3)


def test_a_diverging_member_fails_alone_and_the_others_are_unaffected():
    backend = MLPBackend(dataset="iris")
    shared = {"max_epochs": 4, "patience": 10, "activation": "relu"}
    members = [
        {**SGD_MEMBERS[0], **shared},
        {**SGD_MEMBERS[1], **shared, "learning_rate": 1e6},
        {**SGD_MEMBERS[2], **shared},
    ]
    ctxs = contexts(3)
    results = backend.evaluate_batch(members, [None] * 3, ctxs)
    assert isinstance(results[1], HptError) and "training diverged" in str(results[1])
    assert "lower learning_rate (now 1e+06)" in str(results[1])
    for index in (0, 2):
        expected, expected_ctx = alone(backend, members[index], ctxs[index])
        assert isinstance(results[index], Result)
        assert_same_curves(ctxs[index], expected_ctx)
    expected_failure, _ = alone(backend, members[1], ctxs[1])
    assert str(expected_failure) == str(results[1])


def test_pruning_budgets_and_checkpoints_are_per_member(tmp_path):
    backend = MLPBackend(dataset="iris")
    members = [dict(ADAM_MEMBERS[0], patience=20), dict(ADAM_MEMBERS[1], patience=20), ADAM_MEMBERS[2]]
    ctxs = [
        TrialContext(i, seed=3 + i, checkpoint_dir=tmp_path / f"trial-{i}", stop_rule=rule)
        for i, rule in enumerate([None, lambda step, metrics: step >= 2, None])
    ]
    results = backend.evaluate_batch(members, [4, 6, 2], ctxs)
    assert isinstance(results[1], TrialPruned)
    assert [len(ctx.reports) for ctx in ctxs] == [4, 2, 2]
    assert all((tmp_path / f"trial-{i}" / "mlp.pt").is_file() for i in range(3))

    # a member continued to a larger budget, alone, picks up the batch's checkpoint exactly
    continued = TrialContext(0, seed=3, checkpoint_dir=tmp_path / "trial-0")
    backend.evaluate(members[0], 7, continued)
    straight, straight_ctx = alone(backend, members[0], TrialContext(0, seed=3), budget=7)
    assert [s for s, _ in continued.reports] == [5, 6, 7]
    for (_, got), (_, want) in zip(continued.reports, straight_ctx.reports[4:], strict=True):
        assert got["valid_loss"] == pytest.approx(want["valid_loss"], rel=1e-4, abs=1e-5)

    # and continuing a batch from the checkpoints also matches
    again = [TrialContext(i, seed=3 + i, checkpoint_dir=tmp_path / f"trial-{i}") for i in (0, 2)]
    results = backend.evaluate_batch([members[0], members[2]], [7, 4], again)
    straight2, straight2_ctx = alone(backend, members[2], TrialContext(2, seed=5), budget=4)
    assert [s for s, _ in again[1].reports] == [3, 4]
    assert np.allclose(
        [m["valid_loss"] for _, m in again[1].reports],
        [m["valid_loss"] for _, m in straight2_ctx.reports[2:]],
        rtol=1e-4,
        atol=1e-5,
    )
    assert results[1].value == pytest.approx(straight2.value, rel=1e-4, abs=1e-5)


def test_members_that_cannot_stack_or_are_invalid_are_evaluated_separately():
    backend = MLPBackend(dataset="iris", folds=2)  # k folds: every member trains by itself
    members = [ADAM_MEMBERS[0], ADAM_MEMBERS[1], {**BASE, "optimizer": "lbfgs"}]
    ctxs = contexts(3)
    results = backend.evaluate_batch(members, [2, 2, 2], ctxs)
    assert isinstance(results[2], HptError) and "'optimizer'" in str(results[2])
    for index in (0, 1):
        expected, expected_ctx = alone(backend, members[index], ctxs[index], budget=2)
        assert results[index].value == expected.value
        assert ctxs[index].reports == expected_ctx.reports


def test_cli_batch_trials_log_one_child_run_with_its_own_curve_per_member(tmp_path):
    uri = f"sqlite:///{tmp_path}/batch.db"
    args = ["run", "--strategy", "random", "--batch-trials", "4", "--trials", "8", "--dataset", "digits"]
    args += ["--set", "max_epochs=3", "--tracking-uri", uri, "--seed", "1", "--quiet"]
    # a shared architecture, so the members do stack (their optimisers still differ)
    args += ["--set", "n_hidden=1", "--set", "activation=relu", "--set", "batch_size=128"]
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
    # members of a batch (trials 0-3, 4-7) with the same update rule trained as one stack
    families = {int(c.data.tags["hpt.trial"]): FAMILIES[c.data.params["optimizer"]] for c in children}
    batches = [[families[i] for i in range(start, start + 4)] for start in (0, 4)]
    assert any(len(set(batch)) < 4 for batch in batches)
