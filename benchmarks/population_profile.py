"""What one population batch costs the host and the device: `torch.profiler` around
`MLPBackend.evaluate_population` of K default-space configurations (digits by default, a few epochs): wall time,
aten operations dispatched, kernels launched, host-device copies, and the share of the wall time the GPU was
busy running kernels (the union of their intervals). Before the engine, one K = 64 batch of 2 epochs on an H200
ran 23,454 kernels and 5,655 copies, and the GPU was busy 4.4 % of the time.

    python benchmarks/population_profile.py --ks 64,256            # on a CUDA machine
    python benchmarks/population_profile.py --device cpu --ks 4    # the host side only, anywhere
"""

from __future__ import annotations

import argparse
import time


def profile(k: int, args: argparse.Namespace) -> dict[str, float]:
    import numpy as np
    import torch
    from hpt.backend import TrialContext
    from hpt_torch.backend import MLPBackend
    from hpt_torch.hyperparams import resolve
    from torch.profiler import ProfilerActivity

    backend = MLPBackend(dataset=args.dataset, device=args.device, max_epochs=args.epochs, patience=args.epochs)
    space = backend.default_space()
    rng = np.random.default_rng(args.seed + k)
    configs = [resolve(space.sample(rng)) for _ in range(k)]
    warm = [{**c, "max_epochs": 1} for c in configs[:4]]
    backend.evaluate_population(warm, [1] * len(warm), [TrialContext(i) for i in range(len(warm))])
    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    contexts = [TrialContext(i, seed=i) for i in range(k)]
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        backend.evaluate_population(configs, [None] * k, contexts)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.events()
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    intervals = sorted((e.time_range.start, e.time_range.end) for e in kernels)
    busy, reach = 0.0, float("-inf")
    for begin, end in intervals:  # the union of the kernels' intervals, in microseconds
        busy += max(0.0, end - max(begin, reach))
        reach = max(reach, end)
    return {
        "wall_s": wall,
        "aten_ops": sum(
            1 for e in events if e.name.startswith("aten::") and e.device_type != torch.autograd.DeviceType.CUDA
        ),
        "kernels": len(kernels),
        "memcpy": sum(1 for e in events if "memcpy" in e.name.lower()),
        "gpu_busy": busy / 1e6 / wall if cuda else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--ks", default="64,256", help="stack sizes K, comma-separated")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every member (patience as many)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.dataset}, {args.epochs} epochs, device {args.device}", flush=True)
    print(f"{'K':>5}{'wall s':>9}{'aten ops':>10}{'kernels':>9}{'memcpy':>8}{'GPU busy':>10}", flush=True)
    for k in (int(x) for x in args.ks.split(",")):
        r = profile(k, args)
        print(f"{k:>5}{r['wall_s']:>9.3f}{r['aten_ops']:>10}{r['kernels']:>9}{r['memcpy']:>8}{r['gpu_busy']:>9.1%}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
