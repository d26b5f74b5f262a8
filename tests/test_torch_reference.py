"""The engine against plain PyTorch: every member of a stack (a trial alone, a fold, a member of a mixed batch)
must train as an `nn.Module` stepped by `torch.optim` with autograd's gradients does, epoch by epoch.

`reference` below is that autograd loop, kept here as the oracle (the backend no longer has it): the same
initial weights (`network.initial_weights`) and data order (`engine.epoch_orders`), torch.optim's optimisers
and `LambdaLR` with the engine's schedule. Dropout masks come from other generators, so the configurations
compared here have none."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hpt.backend import Result, TrialContext  # noqa: E402
from hpt.errors import HptError  # noqa: E402
from hpt_torch import kernels  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.hyperparams import resolve  # noqa: E402
from hpt_torch.metrics import member_metrics, metric_names  # noqa: E402
from hpt_torch.network import ACTIVATIONS, build_mlp, initial_weights  # noqa: E402
from hpt_torch.schedule import LRFactor, epoch_orders  # noqa: E402

BASE = {"n_hidden": 2, "n_neurons": 16, "activation": "tanh", "batch_size": 32, "max_epochs": 8, "patience": 1}
MIXED = [  # every hyperparameter of the default space varies: depth, width, shape, activation, init, optimizer
    {**BASE, "optimizer": "momentum", "learning_rate": 0.05, "momentum": 0.9, "n_hidden": 1, "batch_size": 16},
    {**BASE, "optimizer": "momentum", "learning_rate": 0.02, "momentum": 0.7, "l2": 1e-3, "n_neurons": 24,
     "activation": "relu", "batch_size": 64},
    {**BASE, "optimizer": "nesterov", "learning_rate": 0.03, "momentum": 0.8, "l1": 1e-4, "lr_schedule": "cosine",
     "n_hidden": 3, "activation": "gelu"},
    {**BASE, "optimizer": "sgd", "learning_rate": 0.1, "layer_shape": "pyramid", "init": "he", "warmup_epochs": 2,
     "activation": "sigmoid", "batch_size": 16},
    {**BASE, "optimizer": "adam", "learning_rate": 0.01, "n_neurons": 48, "n_hidden": 1, "activation": "elu"},
    {**BASE, "optimizer": "adam", "learning_rate": 0.003, "l2": 1e-3, "lr_schedule": "step", "n_neurons": 12,
     "activation": "selu", "init": "lecun", "batch_size": 64},
    {**BASE, "optimizer": "adamw", "learning_rate": 0.005, "l2": 1e-2, "init": "xavier", "lr_schedule": "exponential",
     "n_hidden": 3, "activation": "leaky_relu", "patience": 3},
    {**BASE, "optimizer": "rmsprop", "learning_rate": 0.003, "batch_size": 16},
    {**BASE, "optimizer": "rmsprop", "learning_rate": 0.001, "l2": 1e-3, "init": "lecun", "n_hidden": 1,
     "activation": "relu"},
    {**BASE, "optimizer": "adagrad", "learning_rate": 0.05, "activation": "gelu", "batch_size": 64},
    {**BASE, "optimizer": "adagrad", "learning_rate": 0.02, "l1": 1e-4, "n_neurons": 20, "n_hidden": 3,
     "warmup_epochs": 2},
]  # fmt: skip


def reference_optimizer(params, model):
    """torch.optim's optimiser for `params`; L2 is weight decay on the weights, not the biases."""
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    groups = [{"params": weights, "weight_decay": params["l2"]}, {"params": biases, "weight_decay": 0.0}]
    lr, name = params["learning_rate"], params["optimizer"]
    if name in ("sgd", "momentum", "nesterov"):
        momentum = 0.0 if name == "sgd" else params["momentum"]
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=name == "nesterov")
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
             "adagrad": torch.optim.Adagrad}  # fmt: skip
    return kinds[name](groups, lr=lr)


def reference_loss(task, out, y):
    if task != "classification":
        return F.mse_loss(out.squeeze(1), y)
    if out.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())
    return F.cross_entropy(out, y)


def reference(backend, params, seed, until=None, fold=0, monitor="valid_loss"):
    """The autograd loop: one network on one fold, early stopping on `monitor`. Returns its per-epoch metrics
    and its best epoch's metrics; raises HptError when the training loss stops being finite."""
    params = resolve(params)
    data = backend.folds[fold]
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    xv, yv = torch.as_tensor(data.x_valid), torch.as_tensor(data.y_valid)
    n_out = backend.n_classes if backend.n_classes > 2 else 1
    model = build_mlp(params, initial_weights(params, x.shape[1], n_out, seed))
    optimizer = reference_optimizer(params, model)
    factor = LRFactor(params["lr_schedule"], params["warmup_epochs"], params["max_epochs"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    n, batch = len(y), min(params["batch_size"], len(y))
    curve, best, bad = [], None, 0
    for epoch in range(until or params["max_epochs"]):
        order = epoch_orders(torch.tensor([seed]), torch.tensor([epoch]), torch.tensor([n]), n)[0]
        total = 0.0
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            loss = reference_loss(backend.task, model(x[rows]), y[rows])
            penalty = params["l1"] * sum(w.abs().sum() for w in weights) if params["l1"] > 0 else 0.0
            optimizer.zero_grad()
            (loss + penalty).backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        scheduler.step()
        if not math.isfinite(total):
            raise HptError(f"training diverged at epoch {epoch + 1}")
        with torch.no_grad():
            out = model(xv).unsqueeze(0)
            values = member_metrics(backend.task, out, yv, backend.n_classes, data.y_mean, data.y_std)
        metrics = {"train_loss": total / n, **dict(zip((f"valid_{m}" for m in metric_names(backend.task)),
                                                       values[0].tolist(), strict=True))}  # fmt: skip
        curve.append((epoch + 1, metrics))
        sign = -1 if monitor in ("valid_accuracy", "valid_f1", "valid_r2") else 1
        if best is None or sign * metrics[monitor] < sign * best[monitor]:
            best, bad = metrics, 0
        else:
            bad += 1
            if bad >= params["patience"]:
                break
    return curve, best


def assert_same_curve(got, want, rel=1e-4, abs_=1e-5):
    assert [step for step, _ in got] == [step for step, _ in want]
    for (_, g), (_, w) in zip(got, want, strict=True):
        assert set(g) == set(w)
        for name, value in w.items():
            assert g[name] == pytest.approx(value, rel=rel, abs=abs_), name


def contexts(n, first_seed=7):
    return [TrialContext(i, seed=first_seed + i) for i in range(n)]


@pytest.mark.parametrize("dataset", ["iris", "breast_cancer", "diabetes"])
def test_each_member_of_a_mixed_stack_trains_as_it_would_alone(dataset):
    """One stack of members differing in depth, width, activation, optimizer family, batch size (a common
    micro-batch with gradient accumulation), schedule and regularisation: per-epoch curves as plain PyTorch."""
    backend = MLPBackend(dataset=dataset, size=120)
    ctxs = contexts(len(MIXED))
    results = backend.evaluate_population([resolve(p) for p in MIXED], [None] * len(MIXED), ctxs)
    for params, ctx, result in zip(MIXED, ctxs, results, strict=True):
        curve, best = reference(backend, params, ctx.seed)
        assert isinstance(result, Result), result
        assert_same_curve(ctx.reports, curve)
        assert result.value == pytest.approx(best["valid_loss"], rel=1e-4, abs=1e-5)
    if dataset != "iris":  # early stopping ended some members before others (they were masked)
        assert len({len(ctx.reports) for ctx in ctxs}) > 1


@pytest.mark.parametrize("dataset", ["wine", "diabetes"])
def test_a_single_trial_is_a_stack_of_one_with_autograds_curves(dataset):
    backend = MLPBackend(dataset=dataset, size=150)
    for params, ctx in zip(MIXED[::3], contexts(len(MIXED[::3])), strict=True):
        result = backend.evaluate(params, None, ctx)
        curve, best = reference(backend, params, ctx.seed)
        assert_same_curve(ctx.reports, curve)
        assert result.value == pytest.approx(best["valid_loss"], rel=1e-4, abs=1e-5)


def test_k_folds_are_one_stack_whose_members_train_as_each_fold_alone():
    """Folds of different sizes (wine: 47 or 48 rows held out of 142) in one stack, each member on its own
    fold: the trial reports the mean of the folds' curves."""
    backend = MLPBackend(dataset="wine", folds=3)
    params = {**MIXED[4], "patience": 2, "max_epochs": 6, "batch_size": 128}  # a batch larger than any fold
    ctx = TrialContext(0, seed=5)
    backend.evaluate(params, None, ctx)
    curves = [reference(backend, params, 5 + fold, fold=fold)[0] for fold in range(3)]
    for epoch, got in ctx.reports:
        rows = [c[min(epoch, len(c)) - 1][1] for c in curves]
        for name in got:
            assert got[name] == pytest.approx(np.mean([r[name] for r in rows]), rel=1e-4, abs=1e-5), name


@pytest.mark.parametrize("activation", ["sigmoid", "selu", "gelu", "elu", "leaky_relu"])
def test_narrower_members_padded_into_a_wider_stack_train_as_alone(activation):
    """Padded units must feed nothing downstream, also where activation(0) != 0 (sigmoid)."""
    backend = MLPBackend(dataset="iris")
    members = [{**p, "activation": activation, "max_epochs": 3} for p in (MIXED[4], MIXED[5])]
    members[1]["layer_shape"] = "pyramid"
    members[1]["n_hidden"] = 1  # its pass-through layer carries activation(0) != 0 in padded units too
    members[0]["n_hidden"] = 2
    ctxs = contexts(2)
    backend.evaluate_population([resolve(p) for p in members], [None, None], ctxs)
    for params, ctx in zip(members, ctxs, strict=True):
        assert_same_curve(ctx.reports, reference(backend, params, ctx.seed)[0])


def test_a_diverging_member_fails_alone_and_the_others_are_unaffected():
    backend = MLPBackend(dataset="iris")
    shared = {"max_epochs": 4, "patience": 10, "activation": "relu"}
    members = [{**MIXED[1], **shared}, {**MIXED[1], **shared, "learning_rate": 1e6}, {**MIXED[2], **shared}]
    ctxs = contexts(3)
    results = backend.evaluate_population([resolve(p) for p in members], [None] * 3, ctxs)
    assert isinstance(results[1], HptError) and "training diverged" in str(results[1])
    assert "lower learning_rate (now 1e+06)" in str(results[1])
    for index in (0, 2):
        assert isinstance(results[index], Result)
        assert_same_curve(ctxs[index].reports, reference(backend, members[index], ctxs[index].seed)[0])
    with pytest.raises(HptError, match="training diverged"):
        reference(backend, members[1], ctxs[1].seed)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_backward_matches_autograd_privately_and_publicly(name):
    """The kernels' self-check passes here, and the public fallback computes the same gradients."""
    activation = ACTIVATIONS[name]
    device = torch.device("cpu")
    assert kernels.usable(name, device, activation.forward)
    generator = torch.Generator().manual_seed(0)
    z, g = torch.randn(4, 9, generator=generator) * 3, torch.randn(4, 9, generator=generator)
    leaf = z.clone().requires_grad_()
    (want,) = torch.autograd.grad(activation.forward(leaf), leaf, g)
    a = activation.forward(z)
    torch.testing.assert_close(kernels.PRIVATE_BACKWARD[name](g.clone(), z, a), want)
    torch.testing.assert_close(kernels.PUBLIC_BACKWARD[name](g.clone(), z, a), want, rtol=1e-5, atol=1e-6)


def test_fused_kernels_check_out_and_a_failing_one_falls_back(monkeypatch):
    device = torch.device("cpu")
    assert all(kernels.usable(f"fused_{family}", device) for family in kernels.FUSED_FAMILIES)
    monkeypatch.setattr(kernels, "_checked", {})
    monkeypatch.setitem(kernels.PRIVATE_BACKWARD, "tanh", lambda g, z, a: g)  # a kernel that computes nonsense
    assert not kernels.usable("tanh", device, torch.tanh)
    assert ACTIVATIONS["tanh"].backward(device) is kernels.PUBLIC_BACKWARD["tanh"]
