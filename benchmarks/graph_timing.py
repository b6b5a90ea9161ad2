"""Timing GPU work the way the engine's decode graphs run it: replays of one CUDA graph, no host launch cost.
Also the benchmarks' ``--json`` writer."""

from __future__ import annotations

import json

import torch


def save_json(path: str | None, result) -> None:
    """Write ``result`` to ``path`` (the ``--json`` option) when one was given."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def graph_ms(fn, launches: int, reps: int = 20) -> float:
    """Median milliseconds of one ``fn(i)`` call, from replays of a graph of ``fn(0) .. fn(launches - 1)``.

    A warm-up pass on a side stream first (compiles, allocator) keeps it out of the capture. Eager
    back-to-back launches would time the host's launch cost instead, for kernels of tens of µs.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(launches):
            fn(i)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(launches):
            fn(i)
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / launches)
    times.sort()
    return times[len(times) // 2]
