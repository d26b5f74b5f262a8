"""Replaying the engine's micro-batch step from a CUDA graph (CUDA only).

On a GPU a small network's step is some 150 kernel launches of a few microseconds each; captured once in a
`torch.cuda.CUDAGraph`, it is one launch. The step reads its inputs (the micro-batch's rows, dropout masks, the
optimiser's per-step coefficients) from static buffers, which each replay refills with a few copies.

Not exercised without a GPU (CI has none): it is used only on CUDA; a capture that fails leaves the stack on
the eager step (one warning), and `HPT_CUDA_GRAPHS=0` turns it off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence

import torch

log = logging.getLogger(__name__)


def enabled(device: torch.device) -> bool:
    """Whether a stack on `device` replays its step from a graph."""
    return device.type == "cuda" and os.environ.get("HPT_CUDA_GRAPHS", "1") != "0"


class StepGraph:
    """`body(*inputs)` captured once per `key` (the step's fixed structure) and replayed on fresh inputs.

    The first call for a key runs the step eagerly on a side stream (capture needs a warm-up, and that run is
    the real step), then captures it; later calls copy their inputs into the captured buffers and replay."""

    def __init__(self, body: Callable[..., None]) -> None:
        self.body = body
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, list[torch.Tensor | None]]] = {}
        self.failed = False

    def __call__(self, key: Hashable, inputs: Sequence[torch.Tensor | None]) -> bool:
        """Run the step on `inputs`; False when the caller must run it eagerly (graphs off after a failure)."""
        if self.failed:
            return False
        entry = self.graphs.get(key)
        if entry is not None:
            graph, static = entry
            for buffer, value in zip(static, inputs, strict=True):
                if buffer is not None:
                    buffer.copy_(value)
            graph.replay()
            return True
        static = [None if value is None else value.clone() for value in inputs]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.body(*static)  # the real step, and the capture's warm-up
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.body(*static)  # recorded, not run
        except Exception as exc:  # noqa: BLE001 - any capture failure: stay eager
            log.warning("hpt: CUDA graph capture failed (%s); the stack trains without graphs", exc)
            self.failed = True
            return True
        self.graphs[key] = (graph, static)
        return True
