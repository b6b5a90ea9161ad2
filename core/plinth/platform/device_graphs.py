"""A graph runner over torch's stream-graph API, shared by platforms whose torch backend has one.

torch's CUDA module (CUDA graphs, and HIP graphs on ROCm builds, which share it)
and its XPU module (XPU graphs, torch >= 2.10 in practice) expose the same three names:
``<Graph class>``, ``graph(g, pool=...)`` (a capture context) and ``graph_pool_handle()``.
A platform passes its namespace and graph class; core never names a device here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from plinth.platform.graph import BatchDescriptor, GraphRunner, StepFn

logger = logging.getLogger(__name__)


class StreamGraphRunner(GraphRunner):
    """One device graph per captured descriptor, captured largest first into one memory pool.

    ``namespace``: the torch device module (e.g. ``torch.xpu``); it must have
    ``graph``, ``graph_pool_handle`` and ``synchronize``. ``graph_class``: its graph type
    (e.g. ``torch.xpu.XPUGraph``). ``mode``: the graph mode name the
    platform declares (e.g. ``"hip_graph"``). A batch is padded to the smallest captured
    descriptor that holds it; larger or non-decode batches (when only decodes were
    captured) run eagerly.
    """

    def __init__(self, namespace: Any, graph_class: Callable[[], Any], mode: str, warmup_runs: int = 1) -> None:
        for name in ("graph", "graph_pool_handle", "synchronize"):
            if not hasattr(namespace, name):
                raise TypeError(f"{namespace!r} has no {name}(): this torch build cannot capture device graphs; "
                                "use graph mode 'eager'")
        self.namespace, self.graph_class, self.mode = namespace, graph_class, mode
        self.warmup_runs = warmup_runs
        self._graphs: dict[BatchDescriptor, tuple[Any, Any]] = {}
        self._pool = None
        self.capture_seconds = 0.0

    def capture(self, fn: StepFn, descriptors: Sequence[BatchDescriptor]) -> None:
        start = time.perf_counter()
        ordered = sorted(set(descriptors), key=lambda d: (d.num_tokens, d.num_reqs), reverse=True)
        for descriptor in ordered:
            for _ in range(self.warmup_runs):  # JIT-compiles kernels, creates library handles
                fn(descriptor)
            self.namespace.synchronize()
            graph = self.graph_class()
            if self._pool is None:
                self._pool = self.namespace.graph_pool_handle()
            with self.namespace.graph(graph, pool=self._pool):
                output = fn(descriptor)
            self._graphs[descriptor] = (graph, output)
        self.namespace.synchronize()
        self.capture_seconds += time.perf_counter() - start
        if ordered:
            logger.info("captured %d %s graphs (sizes %s) in %.2f s", len(ordered), self.mode,
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
