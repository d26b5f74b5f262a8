"""Where training runs: the device a backend option names, and the CPU settings a training block runs under.

The training itself is `hpt_torch.engine`'s."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from hpt.errors import HptError

CHECKPOINT_FILE = "mlp.pt"


def resolve_device(name: str | None) -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; an unavailable device is one clear error."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HptError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HptError(f"device {name!r} is not available here (no CUDA); use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise HptError(f"device {name!r} is not available here (no MPS); use --device cpu or auto")
    return device


@contextmanager
def cpu_settings(threads: int) -> Iterator[None]:
    """Cap torch's intra-op CPU threads for a block (never raising the cap a process runner set), and flush
    denormal floats to zero in it.

    A small tabular network gains nothing from several threads per matrix product, and threads
    spinning on busy cores slow it down by orders of magnitude; parallel trials (`--workers`) use
    the cores better. Saturating activations and decaying moments produce floats below 1e-38, whose
    arithmetic takes a slow path on x86 CPUs: measured 3x slower training for some deep, wide networks
    of the default space. Flushed to zero they change no result that matters.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(int(threads), before)))
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if flushing:
            torch.set_flush_denormal(False)
