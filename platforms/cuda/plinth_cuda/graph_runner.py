"""CUDA graphs through the contract's GraphRunner: one graph per captured batch descriptor.

Captures run largest first into one shared memory pool, so smaller graphs reuse the
larger ones' intermediates; a batch is padded up to the nearest captured size, and a
batch larger than every capture (or not a decode batch, when only decodes were
captured) runs eagerly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch

from plinth.platform import BatchDescriptor, GraphRunner
from plinth.platform.graph import StepFn

logger = logging.getLogger(__name__)


class CudaGraphRunner(GraphRunner):
    mode = "cuda_graph"

    def __init__(self, warmup_runs: int = 1) -> None:
        self.warmup_runs = warmup_runs
        self._graphs: dict[BatchDescriptor, tuple[torch.cuda.CUDAGraph, Any]] = {}
        self._pool = None
        self.capture_seconds = 0.0

    def capture(self, fn: StepFn, descriptors: Sequence[BatchDescriptor]) -> None:
        start = time.perf_counter()
        ordered = sorted(set(descriptors), key=lambda d: (d.num_tokens, d.num_reqs), reverse=True)
        for descriptor in ordered:
            for _ in range(self.warmup_runs):  # compiles Triton kernels, sets up cuBLAS handles
                fn(descriptor)
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            with torch.cuda.graph(graph, pool=self._pool):
                output = fn(descriptor)
            self._graphs[descriptor] = (graph, output)
        torch.cuda.synchronize()
        self.capture_seconds += time.perf_counter() - start
        if ordered:
            logger.info("captured %d CUDA graphs (sizes %s) in %.2f s", len(ordered),
                        ", ".join(str(d.num_tokens) for d in ordered), self.capture_seconds)

    def pad(self, descriptor: BatchDescriptor) -> BatchDescriptor:
        best = None
        for captured in self._graphs:
            if captured.uniform_decode and not descriptor.uniform_decode:
                continue
            if captured.num_tokens < descriptor.num_tokens or captured.num_reqs < descriptor.num_reqs:
                continue
            if best is None or (captured.num_tokens, captured.num_reqs) < (best.num_tokens, best.num_reqs):
                best = captured
        return best or descriptor

    def run(self, fn: StepFn, descriptor: BatchDescriptor) -> Any:
        entry = self._graphs.get(descriptor)
        if entry is None:
            return fn(descriptor)
        graph, output = entry
        graph.replay()
        return output

    def captured(self) -> tuple[BatchDescriptor, ...]:
        return tuple(self._graphs)
