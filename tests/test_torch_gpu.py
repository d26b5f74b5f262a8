"""The mlp backend on a GPU: a stack trained there (padded, stepped by the shared update rule) trains each
member as it trains alone there, and the shared rule on the GPU steps as torch.optim's kernels do on the CPU.

The stack's test is skipped without CUDA (CI has none); the update rule's runs on the CPU then.
`benchmarks/gpu_check.sh` runs this module on a GPU machine, and `HPT_TEST_DEVICE=cpu` runs all of it
here, to check the tests themselves."""

import copy
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from hpt.backend import Result, TrialContext  # noqa: E402
from hpt_torch.backend import MLPBackend  # noqa: E402
from hpt_torch.hyperparams import resolve  # noqa: E402
from hpt_torch.stacked_optim import StackedOptimizer  # noqa: E402

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
def test_a_mixed_stack_on_the_device_trains_each_member_as_it_trains_alone_there(dataset):
    backend = MLPBackend(dataset=dataset, size=150, device=DEVICE)
    reference = copy.copy(backend)
    reference.trainer = "autograd"
    ctxs = [TrialContext(i, seed=11 + i) for i in range(len(MEMBERS))]
    results = backend.evaluate_population([resolve(p) for p in MEMBERS], [None] * len(MEMBERS), ctxs)
    for params, ctx, result in zip(MEMBERS, ctxs, results, strict=True):
        alone_ctx = TrialContext(ctx.number, seed=ctx.seed)
        expected = reference.evaluate(params, None, alone_ctx)
        assert isinstance(result, Result), result
        assert [step for step, _ in ctx.reports] == [step for step, _ in alone_ctx.reports]
        for (_, got), (_, want) in zip(ctx.reports, alone_ctx.reports, strict=True):
            for name, value in want.items():
                assert got[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
        assert result.value == pytest.approx(expected.value, rel=1e-3, abs=1e-4)


def test_the_shared_update_rule_on_the_device_matches_torch_optims_kernels_on_the_cpu():
    """The rule a GPU stack steps with (a dozen kernels for the whole stack) against the fused kernels per
    member that a CPU stack uses; without a GPU both run on the CPU."""
    members = [resolve(p) for p in MEMBERS]
    k, size = len(members), 50
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(k, size, generator=generator)
    decay_mask = (torch.rand(k, size, generator=generator) > 0.3).float()
    grads = [torch.randn(k, size, generator=generator) for _ in range(6)]
    lr = torch.tensor([m["learning_rate"] for m in members]).unsqueeze(1)
    finals = []
    for device, per_member in ((torch.device("cpu"), True), (torch.device(DEVICE or "cpu"), False)):
        flat, grad = start.clone().to(device), torch.zeros(k, size, device=device)
        moments = [torch.zeros(k, size, device=device) for _ in range(2)]
        opt = StackedOptimizer(members, decay_mask.to(device), *moments, torch.zeros(k), per_member)
        for epoch in range(2):
            opt.start_epoch(flat, grad, lr.to(device) * (epoch + 1), [k, k, k])
            for step in range(3):
                grad.copy_(grads[3 * epoch + step])
                opt.step(step)
            opt.end_epoch()
        finals.append(flat.cpu())
    assert not torch.equal(finals[0], start)
    torch.testing.assert_close(finals[1], finals[0], rtol=1e-5, atol=1e-6)
