"""Choosing which of a platform's attention backends a conformance case runs on."""

from __future__ import annotations

import pytest

from plinth.platform import AttentionBackend, AttentionSelector, Platform


def supporting_backends(platform: Platform, selector: AttentionSelector) -> list[AttentionBackend]:
    """Backends that accept ``selector`` and its block size; skips the test when none does."""
    if selector.dtype not in platform.capabilities.dtypes:
        pytest.skip(f"platform does not declare dtype {selector.dtype}")
    chosen, reasons = [], []
    for backend in platform.attention_backends():
        sizes = backend.supported_block_sizes
        if sizes and selector.block_size not in sizes:
            reasons.append(f"{backend.name}: block size {selector.block_size} not in {sizes}")
            continue
        verdict = backend.supports(selector)
        if verdict.ok:
            chosen.append(backend)
        else:
            reasons.append(f"{backend.name}: {verdict.reason}")
    if not chosen:
        pytest.skip("; ".join(reasons) or "platform has no attention backend")
    return chosen


def each_backend(platform: Platform, num_heads: int, num_kv_heads: int, head_size: int, dtype: str):
    """``(backend, block_size)`` for every backend that runs this layer at some block size."""
    found = []
    for backend in platform.attention_backends():
        for block_size in backend.supported_block_sizes or (16,):
            selector = AttentionSelector(head_size, num_heads, num_kv_heads, dtype, dtype, block_size)
            if backend.supports(selector).ok:
                found.append((backend, block_size))
                break
    if not found:
        pytest.skip(f"no backend runs heads {num_heads}/{num_kv_heads}, head size {head_size}, {dtype}")
    return found
