"""Training a trial: metrics, determinism, checkpoint continuation, pruning, schedules, divergence."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hpt import TrialContext, TrialPruned  # noqa: E402
from hpt.errors import HptError, SpaceError  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.metrics import member_metrics  # noqa: E402
from hpt_torch.network import build_mlp, hidden_widths, initial_weights  # noqa: E402
from hpt_torch.schedule import LRFactor  # noqa: E402
from hpt_torch.training import CHECKPOINT_FILE  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

SMALL = {
    "n_hidden": 2,
    "n_neurons": 32,
    "batch_size": 32,
    "dropout": 0.2,
    "optimizer": "momentum",
    "momentum": 0.9,
    "learning_rate": 0.01,
    "lr_schedule": "cosine",
    "warmup_epochs": 1,
    "max_epochs": 8,
    "patience": 50,
}


@pytest.fixture(scope="module")
def iris():
    return MLPBackend(dataset="iris")


def curve(ctx):
    return [(step, m["train_loss"], m["valid_loss"]) for step, m in ctx.reports]


def test_classification_metrics_match_scikit_learn():
    gen = torch.Generator().manual_seed(0)
    logits, y = torch.randn(200, 4, generator=gen), torch.randint(0, 4, (200,), generator=gen)
    loss, accuracy, f1 = member_metrics("classification", logits.unsqueeze(0), y, 4)[0].tolist()
    pred = logits.argmax(1).numpy()
    assert accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert f1 == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)))


def test_metrics_of_members_with_validation_sets_of_different_sizes_use_their_own_rows():
    """k folds: each member's padded rows (weight 0) count for nothing."""
    gen = torch.Generator().manual_seed(2)
    logits, y = torch.randn(2, 50, 3, generator=gen), torch.randint(0, 3, (2, 50), generator=gen)
    weight = torch.ones(2, 50)
    weight[1, 40:] = 0
    got = member_metrics("classification", logits, y, 3, weight=weight)
    alone = member_metrics("classification", logits[1:, :40], y[1:, :40], 3)
    torch.testing.assert_close(got[1], alone[0])
    out, target = torch.randn(2, 30, 1, generator=gen), torch.randn(2, 30, generator=gen)
    mask = torch.ones(2, 30)
    mask[0, 25:] = 0
    scale = torch.tensor([[2.0], [3.0]])
    got = member_metrics("regression", out, target, 0, scale, scale, mask)
    torch.testing.assert_close(got[0], member_metrics("regression", out[:1, :25], target[:1, :25], 0, 2.0, 2.0)[0])


def test_regression_metrics_are_in_the_targets_units():
    gen = torch.Generator().manual_seed(1)
    out, y = torch.randn(100, 1, generator=gen), torch.randn(100, generator=gen)
    _, rmse, mae, r2 = member_metrics("regression", out.unsqueeze(0), y, 0, 10.0, 3.0)[0].tolist()
    truth, pred = (y * 3 + 10).numpy(), (out.squeeze(1) * 3 + 10).numpy()
    assert rmse == pytest.approx(math.sqrt(skm.mean_squared_error(truth, pred)), rel=1e-5)
    assert mae == pytest.approx(skm.mean_absolute_error(truth, pred), rel=1e-5)
    assert r2 == pytest.approx(skm.r2_score(truth, pred), rel=1e-4)


def test_same_params_and_seed_give_the_same_curve(iris):
    runs = [TrialContext(0, seed=s) for s in (7, 7, 8)]
    values = [iris.evaluate(SMALL, None, ctx).value for ctx in runs]
    assert curve(runs[0]) == curve(runs[1]) and values[0] == values[1]
    assert curve(runs[0]) != curve(runs[2])
    assert [step for step, *_ in curve(runs[0])] == list(range(1, 9))


def test_a_larger_budget_continues_from_the_checkpoint(iris, tmp_path):
    ctx_small = TrialContext(0, budget=3, seed=5, checkpoint_dir=tmp_path / "a")
    iris.evaluate(SMALL, 3, ctx_small)
    assert (tmp_path / "a" / CHECKPOINT_FILE).is_file()
    ctx_more = TrialContext(0, budget=6, seed=5, checkpoint_dir=tmp_path / "a")
    continued = iris.evaluate(SMALL, 6, ctx_more)
    ctx_once = TrialContext(0, budget=6, seed=5, checkpoint_dir=tmp_path / "b")
    straight = iris.evaluate(SMALL, 6, ctx_once)
    assert [s for s, *_ in curve(ctx_more)] == [4, 5, 6]
    assert curve(ctx_small) + curve(ctx_more) == curve(ctx_once)
    assert continued.value == straight.value and continued.metrics["epochs"] == 6


def test_a_checkpoint_of_other_params_is_not_reused(iris, tmp_path):
    iris.evaluate(SMALL, 3, TrialContext(0, budget=3, seed=5, checkpoint_dir=tmp_path))
    ctx = TrialContext(0, budget=4, seed=5, checkpoint_dir=tmp_path)
    iris.evaluate({**SMALL, "learning_rate": 0.02}, 4, ctx)
    assert [s for s, *_ in curve(ctx)] == [1, 2, 3, 4]


def test_should_stop_prunes_the_trial_and_keeps_its_reports(iris, tmp_path):
    ctx = TrialContext(0, seed=0, checkpoint_dir=tmp_path, metric=iris.metric, stop_rule=lambda step, m: step >= 2)
    with pytest.raises(TrialPruned):
        iris.evaluate(SMALL, None, ctx)
    assert [s for s, _ in ctx.reports] == [1, 2]
    assert {"train_loss", "valid_loss", "valid_accuracy", "valid_f1"} <= set(ctx.reports[-1][1])


def test_early_stopping_returns_the_best_epoch(iris):
    ctx = TrialContext(0, seed=0)
    overfitting = {"optimizer": "adam", "learning_rate": 0.05, "n_neurons": 128, "max_epochs": 40, "patience": 2}
    result = iris.evaluate(overfitting, None, ctx)
    losses = [m["valid_loss"] for _, m in ctx.reports]
    assert result.value == pytest.approx(min(losses))
    assert result.metrics["best_epoch"] == 1 + losses.index(min(losses))
    assert result.metrics["epochs"] == len(losses) == result.metrics["best_epoch"] + 2 < 40


def test_divergence_fails_with_one_line(iris):
    with pytest.raises(HptError, match="training diverged.*lower learning_rate"):
        iris.evaluate(
            {**SMALL, "optimizer": "sgd", "learning_rate": 1e12, "dropout": 0.0}, None, TrialContext(0, seed=0)
        )


def test_unknown_or_bad_hyperparameters_are_rejected(iris):
    with pytest.raises(SpaceError, match="unknown hyperparameter 'lerning_rate'"):
        iris.evaluate({"lerning_rate": 0.1}, None, TrialContext(0))
    with pytest.raises(SpaceError, match="'activation'"):
        iris.evaluate({"activation": "swish"}, None, TrialContext(0))


def test_schedules_warm_up_then_decay():
    warm = LRFactor("constant", 3, 20)
    assert [warm(e) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    for name in ("exponential", "step", "cosine"):
        factors = [LRFactor(name, 0, 20)(e) for e in range(21)]
        assert factors[0] == 1.0 and all(a >= b for a, b in zip(factors, factors[1:], strict=False))
        assert factors[-1] <= 0.13
    assert LRFactor("step", 0, 20)(5) == 0.5


def test_network_shape_follows_the_params():
    assert hidden_widths(3, 64, "pyramid") == [64, 32, 16]
    params = {
        "n_hidden": 2,
        "n_neurons": 16,
        "layer_shape": "constant",
        "activation": "selu",
        "dropout": 0.1,
        "init": "lecun",
    }
    weights = initial_weights(params, 5, 3, seed=0)
    model = build_mlp(params, weights)
    assert [type(m).__name__ for m in model] == ["Linear", "SELU", "AlphaDropout"] * 2 + ["Linear"]
    assert sum(p.numel() for p in model.parameters()) == (5 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)
    assert float(model[0].bias.detach().abs().sum()) == 0.0  # non-default inits zero the biases
    assert torch.equal(model[0].weight, weights[0]) and torch.equal(weights[2], initial_weights(params, 5, 3, 0)[2])
    default = initial_weights({**params, "init": "default"}, 5, 3, seed=0)
    assert float(default[0].abs().max()) <= 1 / math.sqrt(5) and float(default[1].abs().sum()) > 0  # nn.Linear's


def test_regression_backend_reports_rmse_and_scores_the_test_split():
    backend = MLPBackend(dataset="diabetes", metric="rmse")
    assert (backend.metric, backend.direction) == ("valid_rmse", "minimize")
    ctx = TrialContext(0, seed=0)
    result = backend.evaluate({**SMALL, "max_epochs": 4}, None, ctx)
    assert result.value == pytest.approx(min(m["valid_rmse"] for _, m in ctx.reports))
    assert set(backend.final_report({**SMALL, "max_epochs": 4}, 0)) == {"test_loss", "test_rmse", "test_mae", "test_r2"}
    assert np.isfinite(result.metrics["best_valid_r2"])
