"""The mlp backend on a GPU: a stack trained there (padded, stepped by the shared update rule) trains each
member as plain PyTorch trains it (`test_torch_reference`), and the shared rule steps as torch.optim does.

The stack's test is skipped without CUDA (CI has none); the update rule's runs on the CPU then.
`benchmarks/gpu_check.sh` runs this module on a GPU machine, and `HPT_TEST_DEVICE=cpu` runs all of it
here, to check the tests themselves."""

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hpt.backend import Result, TrialContext  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.hyperparams import resolve  # noqa: E402
from hpt_torch.stacked_optim import StackedOptimizer  # noqa: E402
from test_torch_reference import reference, reference_optimizer  # noqa: E402

DEVICE = os.environ.get("HPT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
needs_device = pytest.mark.skipif(DEVICE is None, reason="needs a CUDA GPU (HPT_TEST_DEVICE=cpu: here)")

BASE = {"n_hidden": 2, "n_neurons": 16, "batch_size": 32, "max_epochs": 6, "patience": 2, "dropout": 0.0}
MEMBERS = [  # depth, width, shape, activation, optimiser family, batch size, schedule and regularisation differ
    {**BASE, "activation": "tanh", "optimizer": "momentum", "learning_rate": 0.05, "momentum": 0.9, "n_hidden": 1},
    {**BASE, "activation": "relu", "optimizer": "nesterov", "learning_rate": 0.03, "momentum": 0.8, "l1": 1e-4},
    {**BASE, "activation": "gelu", "optimizer": "sgd", "learning_rate": 0.1, "layer_shape": "pyramid", "n_hidden": 3},
    {**BASE, "activation": "elu", "optimizer": "adam", "learning_rate": 0.01, "n_neurons": 40, "l2": 1e-3},
    {**BASE, "activation": "selu", "optimizer": "adamw", "learning_rate": 0.005, "l2": 1e-2, "batch_size": 64},
    {**BASE, "activation": "leaky_relu", "optimizer": "rmsprop", "learning_rate": 0.003, "n_hidden": 3},
    {**BASE, "activation": "sigmoid", "optimizer": "adagrad", "learning_rate": 0.05, "warmup_epochs": 2},
    {**BASE, "activation": "relu", "optimizer": "adam", "learning_rate": 0.002, "lr_schedule": "cosine", "l1": 1e-4},
    {**BASE, "activation": "tanh", "optimizer": "rmsprop", "learning_rate": 0.001, "l2": 1e-3, "init": "lecun"},
    {**BASE, "activation": "relu", "optimizer": "adagrad", "learning_rate": 0.02, "l1": 1e-4, "n_neurons": 20},
]


@needs_device
@pytest.mark.parametrize("dataset", ["wine", "diabetes"])
def test_a_mixed_stack_on_the_device_trains_each_member_as_plain_pytorch_does(dataset):
    backend = MLPBackend(dataset=dataset, size=150, device=DEVICE)
    ctxs = [TrialContext(i, seed=11 + i) for i in range(len(MEMBERS))]
    results = backend.evaluate_population([resolve(p) for p in MEMBERS], [None] * len(MEMBERS), ctxs)
    for params, ctx, result in zip(MEMBERS, ctxs, results, strict=True):
        curve, best = reference(backend, params, ctx.seed)
        assert isinstance(result, Result), result
        assert [step for step, _ in ctx.reports] == [step for step, _ in curve]
        for (_, got), (_, want) in zip(ctx.reports, curve, strict=True):
            for name, value in want.items():
                assert got[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
        assert result.value == pytest.approx(best["valid_loss"], rel=1e-3, abs=1e-4)


def test_the_shared_update_rule_on_the_device_matches_torch_optim():
    """The rule a stack steps with (a dozen kernels for the whole stack), with members that step at different
    micro-batches (accumulating batches) and one that has finished (masked), against torch.optim per member
    on the CPU; without a GPU the rule runs on the CPU."""
    members = [resolve({**p, "l1": p.get("l1", 0.0)}) for p in MEMBERS]
    k, size = len(members), 50
    device = torch.device(DEVICE or "cpu")
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(k, size, generator=generator)
    grads = [torch.randn(k, size, generator=generator) for _ in range(6)]
    stepping = torch.tensor([[1.0] * k, [float(i % 2) for i in range(k)], [1.0] * k])  # odd members accumulate
    stepping[:, 3] = 0.0  # member 3 has finished: it must not move
    flat, grad = start.clone().to(device), torch.zeros(k, size, device=device)
    optimizer = StackedOptimizer(members, torch.ones(k, size, device=device))
    lr = torch.tensor([m["learning_rate"] for m in members]).unsqueeze(1)
    for epoch in range(2):
        optimizer.start_epoch(flat, grad, (lr * (epoch + 1)).to(device), stepping.to(device), 3, None, True)
        for step in range(3):
            grad.add_(grads[3 * epoch + step].to(device))
            optimizer.step(step)
        optimizer.end_epoch()
    for i, params in enumerate(members):
        weight = torch.nn.Parameter(start[i].clone())
        model = torch.nn.Module()
        model.weight = weight
        reference_opt = reference_optimizer(params, model)
        pending = torch.zeros(size)
        for epoch in range(2):
            for group in reference_opt.param_groups:
                group["lr"] = params["learning_rate"] * (epoch + 1)
            for step in range(3):
                pending += grads[3 * epoch + step][i]
                if stepping[step, i]:
                    weight.grad = pending.clone() + params["l1"] * torch.sign(weight.detach())
                    reference_opt.step()
                    pending.zero_()
        torch.testing.assert_close(flat[i].cpu(), weight.detach(), rtol=1e-5, atol=1e-6, msg=params["optimizer"])
    assert torch.equal(flat[3].cpu(), start[3])
