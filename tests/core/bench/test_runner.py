"""Benchmark summaries: the roofline share only where BENCHMARKS.md's bound applies (16-bit weights and KV cache)."""

from __future__ import annotations

import pytest

from plinth.bench.runner import ROOFLINE_OUT_TOK_S, BenchOptions, _kv_cache_dtype, _summary
from plinth.bench.workloads import build_workload


@pytest.mark.parametrize(("engine_options", "name", "has_bound"), [
    (None, "auto", True), ({"kv_cache_dtype": "bfloat16"}, "bfloat16", True),
    ({"kv_cache_dtype": "fp8"}, "fp8_e4m3", False), ({"kv_cache_dtype": "fp8_e5m2"}, "fp8_e5m2", False),
])
def test_roofline_share_only_for_a_16_bit_cache(engine_options, name, has_bound):
    workload = build_workload("T2", 4)
    kv = _kv_cache_dtype(BenchOptions(engine_options=engine_options))
    result = _summary(workload, 2.0, 4096, 4 * 1024, 1.0, kv)
    assert result["kv_cache_dtype"] == name
    expected = round(100 * 4 * 1024 / 2.0 / ROOFLINE_OUT_TOK_S["T2"], 1) if has_bound else None
    assert result["roofline_pct"] == expected


@pytest.mark.parametrize(("quantization", "has_bound"), [(None, True), ("fp8", False)])
def test_roofline_share_only_for_16_bit_weights(quantization, has_bound):
    workload = build_workload("T1", 4)
    result = _summary(workload, 2.0, 4096, 4 * 128, 1.0, "auto", quantization)
    assert result["quantization"] == quantization
    assert (result["roofline_pct"] is not None) == has_bound
