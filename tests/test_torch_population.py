"""Population training in the mlp backend: a batch of configurations trained as one stacked model must
train each member as it would train alone, whatever hyperparameters they differ in, and keep members
apart (divergence, pruning, budgets, checkpoints)."""

import copy

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
from hpt_torch.population import auto_batch_trials, stack_groups  # noqa: E402
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
    """The member trained by itself as a plain PyTorch model (an nn.Module stepped by torch.optim): the
    reference population training must match."""
    reference = copy.copy(backend)
    reference.trainer = "autograd"
    ctx = TrialContext(ctx_like.number, seed=ctx_like.seed, checkpoint_dir=ctx_like.checkpoint_dir)
    try:
        return reference.evaluate(params, budget, ctx), ctx
    except Exception as exc:
        return exc, ctx


def assert_same_curves(batched_ctx, alone_ctx):
    assert [step for step, _ in batched_ctx.reports] == [step for step, _ in alone_ctx.reports]
    for (_, got), (_, want) in zip(batched_ctx.reports, alone_ctx.reports, strict=True):
        assert set(got) == set(want)
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


MIXED = [  # every hyperparameter of the default space varies: depth, width, shape, activation, init, optimizer
    {**SGD_MEMBERS[0], "n_hidden": 1, "batch_size": 16},
    {**SGD_MEMBERS[1], "activation": "relu", "batch_size": 64},
    {**SGD_MEMBERS[2], "n_hidden": 3, "activation": "gelu"},
    {**SGD_MEMBERS[3], "activation": "sigmoid", "batch_size": 16},
    {**ADAM_MEMBERS[0], "n_neurons": 48, "n_hidden": 1, "activation": "elu"},
    {**ADAM_MEMBERS[1], "activation": "selu", "init": "lecun", "batch_size": 64},
    {**ADAM_MEMBERS[2], "n_hidden": 3, "activation": "leaky_relu", "patience": 3},
    {**OTHER_MEMBERS[0], "batch_size": 16},
    {**OTHER_MEMBERS[1], "n_hidden": 1, "activation": "relu"},
    {**OTHER_MEMBERS[2], "activation": "gelu", "batch_size": 64},
    {**OTHER_MEMBERS[3], "n_hidden": 3, "warmup_epochs": 2},
]


@pytest.mark.parametrize("dataset", ["iris", "breast_cancer", "diabetes"])
def test_each_member_of_a_mixed_stack_trains_as_it_would_alone(dataset):
    """One stack of members differing in depth, width, activation, optimizer family, batch size (a common
    micro-batch with gradient accumulation), schedule and regularisation: per-epoch curves as alone."""
    backend = MLPBackend(dataset=dataset, size=120)
    ctxs = contexts(len(MIXED))
    results = backend.evaluate_population([resolve(p) for p in MIXED], [None] * len(MIXED), ctxs)
    for params, ctx, result in zip(MIXED, ctxs, results, strict=True):
        expected, expected_ctx = alone(backend, params, ctx)
        assert isinstance(result, Result), result
        assert_same_curves(ctx, expected_ctx)
        assert result.value == pytest.approx(expected.value, rel=1e-4, abs=1e-5)
        assert {k: result.metrics[k] for k in ("best_epoch", "epochs", "n_params")} == {
            k: expected.metrics[k] for k in ("best_epoch", "epochs", "n_params")
        }
    if dataset != "iris":  # early stopping ended some members before others (the stack shrank)
        assert len({len(ctx.reports) for ctx in ctxs}) > 1


def test_evaluate_batch_of_the_default_space_matches_training_alone():
    """Whatever buckets the cost model makes of random default-space suggestions."""
    backend = MLPBackend(dataset="iris", max_epochs=3)
    rng = np.random.default_rng(3)
    members = [{**backend.default_space().sample(rng), "dropout": 0.0} for _ in range(6)]
    ctxs = contexts(6)
    results = backend.evaluate_batch(members, [None] * 6, ctxs)
    for params, ctx, result in zip(members, ctxs, results, strict=True):
        expected, expected_ctx = alone(backend, params, ctx)
        assert result.value == pytest.approx(expected.value, rel=1e-4, abs=1e-5)
        assert_same_curves(ctx, expected_ctx)


@pytest.mark.parametrize("dataset", ["wine", "diabetes"])
def test_a_single_trial_trains_by_default_as_a_stack_of_one_with_autograds_curves(dataset):
    """`hpt run` without --batch-trials: the default trainer is the stacked step, equal to plain PyTorch."""
    backend = MLPBackend(dataset=dataset, size=150)
    assert backend.trainer == "stacked"
    for params, ctx in zip(MIXED[::3], contexts(len(MIXED[::3])), strict=True):
        result = backend.evaluate(params, None, ctx)
        expected, expected_ctx = alone(backend, params, ctx)
        assert_same_curves(ctx, expected_ctx)
        assert result.value == pytest.approx(expected.value, rel=1e-4, abs=1e-5)


def test_an_unknown_trainer_is_refused_with_the_choices():
    with pytest.raises(HptError, match="unknown trainer 'jit'; use stacked or autograd"):
        MLPBackend(dataset="iris", trainer="jit")


def test_stack_groups_buckets_what_padding_would_waste():
    small = {**resolve(BASE), "n_neurons": 16, "n_hidden": 1}
    large = {**resolve(BASE), "n_neurons": 256, "n_hidden": 3}
    groups = stack_groups([small, large, small, large, small], 1000, 64, 10)
    assert [0, 2, 4] in [sorted(g) for g in groups]  # small ones share a stack
    assert all(not ({1, 3} & set(g)) or not ({0, 2, 4} & set(g)) for g in groups)  # and are not padded to large
    # batch sizes that do not divide each other share no micro-batch
    odd = [{**small, "batch_size": size} for size in (32, 64, 48, 96)]
    assert all(set(g) <= {0, 1} or set(g) <= {2, 3} for g in stack_groups(odd, 1000, 64, 10))


def test_a_stack_forms_on_a_cpu_only_where_its_predicted_saving_exceeds_the_margin(monkeypatch):
    """Two mid-sized networks the raw CPU model predicts 1.1x cheaper stacked: within the model's measured
    optimism (1.25x), so they train apart; without the margin they would share a stack."""
    import dataclasses

    from hpt_torch import population

    pair = [
        {**resolve(BASE), "batch_size": 128, "n_neurons": 128, "n_hidden": 2, "activation": "gelu"},
        {**resolve(BASE), "batch_size": 128, "n_neurons": 122, "n_hidden": 3, "activation": "selu"},
    ]
    assert sorted(map(sorted, stack_groups(pair, 1437, 64, 10))) == [[0], [1]]
    raw = dataclasses.replace(population.COST_MODELS["cpu"], stack_margin=1.0)
    monkeypatch.setitem(population.COST_MODELS, "cpu", raw)
    assert stack_groups(pair, 1437, 64, 10) == [[0, 1]]


def test_stack_groups_of_default_space_draws_partition_the_members():
    space = MLPBackend(dataset="iris").default_space()
    rng = np.random.default_rng(0)
    for k in (1, 7, 40):
        members = [resolve(space.sample(rng)) for _ in range(k)]
        groups = stack_groups(members, 1078, 64, 10)
        assert sorted(i for g in groups for i in g) == list(range(k))
        for g in groups:  # members of a stack share a micro-batch: their batch sizes divide each other
            sizes = sorted(members[i]["batch_size"] for i in g)
            assert all(b % a == 0 for a, b in zip(sizes, sizes[1:], strict=False))


def test_auto_batch_trials_picks_k_by_device():
    assert auto_batch_trials("cpu") == 1  # measured: stacking gains nothing over stacks of one on a CPU
    assert auto_batch_trials("cuda:1") == 64
    assert auto_batch_trials("auto") >= 1


@pytest.mark.parametrize("activation", ["sigmoid", "selu", "gelu", "elu", "leaky_relu"])
def test_narrower_members_padded_into_a_wider_stack_train_as_alone(activation):
    """Padded units must feed nothing downstream, also where activation(0) != 0 (sigmoid)."""
    backend = MLPBackend(dataset="iris")
    members = [{**p, "activation": activation, "max_epochs": 3} for p in ADAM_MEMBERS[:2]]
    members[1]["layer_shape"] = "pyramid"
    members[1]["n_hidden"] = 1  # its pass-through layer carries activation(0) != 0 in padded units too
    ctxs = contexts(2)
    backend.evaluate_population([resolve(p) for p in members], [None, None], ctxs)
    for params, ctx in zip(members, ctxs, strict=True):
        assert_same_curves(ctx, alone(backend, params, ctx)[1])


def test_dropout_rates_are_per_member():
    backend = MLPBackend(dataset="iris")
    members = [
        {**ADAM_MEMBERS[0], "patience": 10},
        {**ADAM_MEMBERS[1], "patience": 10, "dropout": 0.3},
        {**ADAM_MEMBERS[1], "patience": 10, "dropout": 0.2, "activation": "selu", "n_hidden": 1},
    ]
    ctxs = contexts(3)
    backend.evaluate_population([resolve(p) for p in members], [3, 3, 3], ctxs)
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
    results = backend.evaluate_population([resolve(p) for p in members], [None] * 3, ctxs)
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
    results = backend.evaluate_population([resolve(p) for p in members], [4, 6, 2], ctxs)
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
    results = backend.evaluate_population([resolve(members[0]), resolve(members[2])], [7, 4], again)
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
