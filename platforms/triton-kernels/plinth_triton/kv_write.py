"""KV-cache write from ``slot_mapping`` into the standard layout; negative slots are skipped.

An fp8 cache (``kv_cache_dtype="fp8_e4m3"`` / ``"fp8_e5m2"``) stores the values saturated to the
format's range, scale 1.0, as ``plinth.ops.reference.write_kv`` does."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from plinth.ops.reference import fp8_limit


@triton.jit
def _write_kv_kernel(
    key_ptr, value_ptr, k_cache_ptr, v_cache_ptr, slot_ptr,
    stride_kt, stride_vt, stride_cs, BLOCK: tl.constexpr, WIDTH: tl.constexpr, LIMIT: tl.constexpr,
):
    token = tl.program_id(0)
    slot = tl.load(slot_ptr + token).to(tl.int64)
    if slot < 0:
        return
    offs = tl.arange(0, BLOCK)
    ok = offs < WIDTH
    k = tl.load(key_ptr + token.to(tl.int64) * stride_kt + offs, mask=ok)
    v = tl.load(value_ptr + token.to(tl.int64) * stride_vt + offs, mask=ok)
    if LIMIT > 0:  # fp8: saturate (a cast would make out-of-range values NaN or inf)
        k = tl.clamp(k.to(tl.float32), -LIMIT, LIMIT)
        v = tl.clamp(v.to(tl.float32), -LIMIT, LIMIT)
    tl.store(k_cache_ptr + slot * stride_cs + offs, k.to(k_cache_ptr.dtype.element_ty), mask=ok)
    tl.store(v_cache_ptr + slot * stride_cs + offs, v.to(v_cache_ptr.dtype.element_ty), mask=ok)


def _rows(x: torch.Tensor, num_kv_heads: int, head_size: int) -> torch.Tensor:
    """``x`` as ``[T, heads*head]`` rows with a contiguous inner part (a view when possible)."""
    x = x.reshape(x.shape[0], num_kv_heads * head_size) if x.dim() == 3 and x.stride(1) == head_size else x
    if x.dim() != 2 or x.stride(-1) != 1:
        x = x.reshape(x.shape[0], -1).contiguous()
    return x


def write_kv(key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Same contract as ``plinth.ops.reference.write_kv``."""
    num_tokens = slot_mapping.shape[0]
    if num_tokens == 0:
        return
    num_kv_heads, head_size = kv_cache.shape[-2:]
    if kv_cache.stride(-1) != 1 or kv_cache.stride(-2) != head_size or kv_cache.stride(2) != num_kv_heads * head_size:
        raise ValueError("write_kv needs a cache whose (block_size, heads, head_size) part is contiguous")
    k, v = _rows(key, num_kv_heads, head_size), _rows(value, num_kv_heads, head_size)
    width = num_kv_heads * head_size
    _write_kv_kernel[(num_tokens,)](
        k, v, kv_cache[0], kv_cache[1], slot_mapping, k.stride(0), v.stride(0), kv_cache.stride(2),
        BLOCK=triton.next_power_of_2(width), WIDTH=width, LIMIT=fp8_limit(kv_cache.dtype) or 0.0, num_warps=4,
    )
