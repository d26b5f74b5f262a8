"""The engine's epoch is built for a GPU: its host work does not grow with the number of members K.

A `TorchDispatchMode` counts every aten operation one training epoch issues (steps, validation, early
stopping's bookkeeping), and the host reads of device values (`.item()`, `.cpu()`, `.tolist()`, `.numpy()`,
`aten::_local_scalar_dense`), for stacks of K = 4, 16, 64 and 256 members. On a GPU each operation is a kernel
launch and each read a synchronisation; on the CPU the counts are the same, so this runs anywhere. It is a
structural test, not a timing one: no clock is read."""

from __future__ import annotations

from collections import Counter

import pytest

torch = pytest.importorskip("torch")

from hpt_torch.engine import DeviceData, Member, Stack  # noqa: E402
from hpt_torch.hyperparams import resolve  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

KS = (4, 16, 64, 256)
CONFIGS = [  # every kind of work an epoch may do: activations, dropout (alpha dropout too), optimiser families,
    # L1, L2 and AdamW's decay, batch sizes that accumulate, depths that pass through, widths that pad
    {"activation": "relu", "optimizer": "adam", "batch_size": 16, "n_hidden": 2, "n_neurons": 16, "dropout": 0.2,
     "l1": 1e-5},
    {"activation": "tanh", "optimizer": "nesterov", "batch_size": 32, "n_hidden": 1, "n_neurons": 8, "l2": 1e-4,
     "lr_schedule": "cosine", "warmup_epochs": 1},
    {"activation": "selu", "optimizer": "adamw", "batch_size": 32, "n_hidden": 2, "n_neurons": 12, "l2": 1e-3,
     "dropout": 0.1, "layer_shape": "pyramid"},
    {"activation": "relu", "optimizer": "rmsprop", "batch_size": 16, "n_hidden": 1, "n_neurons": 16,
     "lr_schedule": "step"},
]  # fmt: skip
SYNCS = ("item", "cpu", "tolist", "numpy")


def folds_data() -> DeviceData:
    """Two folds of different sizes (100 and 97 training rows, 30 and 29 validation rows), 8 features, 3 classes:
    members see different folds, padded and masked."""
    generator = torch.Generator().manual_seed(0)
    x_train, x_valid = torch.randn(197, 8, generator=generator), torch.randn(59, 8, generator=generator)
    y_train, y_valid = torch.randint(0, 3, (197,), generator=generator), torch.randint(0, 3, (59,), generator=generator)
    return DeviceData("classification", 3, 8, x_train, y_train, [0, 100], [100, 97], x_valid, y_valid, [0, 30],
                      [30, 29], [0.0, 0.0], [1.0, 1.0])  # fmt: skip


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        self.ops[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))


def count_epoch(k: int, finished: int = 0, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, int, Counter]:
    """Aten operations and host reads of one epoch of a stack of K members (`finished` of them masked)."""
    members = [Member(resolve({**CONFIGS[i % 4], "patience": 100}), i % 2, i, 100) for i in range(k)]
    stack = Stack(members, folds_data())
    for _ in range(2):  # warm-up: caches, the kernels' checks
        stack.epoch()
    for index in range(finished):
        stack.finish(index)
    stack._sync_active()
    reads: Counter[str] = Counter()
    with pytest.MonkeyPatch.context() as patch:
        for name in SYNCS:
            original = getattr(torch.Tensor, name)

            def counted(self, *args, _name=name, _original=original, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
                reads[_name] += 1
                return _original(self, *args, **kwargs)

            patch.setattr(torch.Tensor, name, counted)
        with OpCounter() as counter:
            stack.epoch()
    reads["_local_scalar_dense"] = counter.ops["_local_scalar_dense"] - reads["item"]
    return sum(counter.ops.values()), sum(reads.values()), counter.ops


@pytest.mark.parametrize("finished", [0, 3])
def test_an_epochs_operations_do_not_grow_with_k_and_it_reads_the_device_once(finished):
    counts = {k: count_epoch(k, finished) for k in KS}
    ops = {k: c[0] for k, c in counts.items()}
    assert all(ops[k] <= ops[KS[0]] for k in KS), ops
    assert all(syncs <= 1 for _, syncs, _ in counts.values()), {k: c[1] for k, c in counts.items()}
    per_kind = counts[KS[0]][2]
    assert per_kind["bmm"] + per_kind["baddbmm"] > 0 and per_kind["argsort"] + per_kind["sort"] >= 1  # it trained


def test_the_counter_sees_per_member_work():
    """The check can fail: a loop over members (as a per-member optimiser step would be) shows up."""
    stack = Stack([Member(resolve(CONFIGS[i % 4]), 0, i, 100) for i in range(8)], folds_data())
    with OpCounter() as counter:
        for row in stack.flat:
            row.mul_(1.0)
    assert counter.ops["mul_"] == 8


class CopyingReplay:
    """What a captured CUDA graph does, on the CPU: the step's inputs are copied into buffers made at the first
    call of each key, and the step always runs on those buffers."""

    def __init__(self, body) -> None:  # noqa: ANN001
        self.body, self.buffers = body, {}

    def __call__(self, key, inputs) -> bool:  # noqa: ANN001
        static = self.buffers.setdefault(key, [None if t is None else t.clone() for t in inputs])
        for buffer, value in zip(static, inputs, strict=True):
            if buffer is not None:
                buffer.copy_(value)
        self.body(*static)
        return True


def test_the_step_a_cuda_graph_captures_reads_only_its_inputs_and_the_stacks_own_tensors():
    """Replaying from fixed buffers (as `graphs.StepGraph` does on CUDA) trains every member as the eager step."""
    curves = []
    for replay in (False, True):
        members = [Member(resolve({**CONFIGS[i % 4], "patience": 2, "max_epochs": 6}), i % 2, i, 6) for i in range(8)]
        stack = Stack(members, folds_data())
        if replay:
            stack._graph = CopyingReplay(stack._graph_step)
        stack.train()
        curves.append([(m.state.epoch, m.state.best_value, m.state.last_metrics) for m in stack.members])
    for (epoch, best, last), (epoch_r, best_r, last_r) in zip(*curves, strict=True):
        assert epoch == epoch_r and best == pytest.approx(best_r, rel=1e-6)  # losses summed in another order
        assert last == pytest.approx(last_r, rel=1e-6)
    assert len({epoch for epoch, *_ in curves[0]}) > 1  # some members stopped early: the masked step replays too
