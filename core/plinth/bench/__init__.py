"""Offline benchmarks (``plinth bench throughput|latency``): the workloads of BENCHMARKS.md."""

from plinth.bench.workloads import WORKLOADS, Workload, build_workload

__all__ = ["WORKLOADS", "Workload", "build_workload"]
