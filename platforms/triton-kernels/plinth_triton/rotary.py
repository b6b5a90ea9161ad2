"""Rotary embedding of q and k in one pass (NeoX halves or GPT-J pairs, partial rotary),
optionally after a per-head RMSNorm of q and k (Qwen3) in the same pass, and optionally writing the
rotated keys and the values into the KV cache from ``slot_mapping`` in that pass too
(``rotary_write_kv``: what ``write_kv`` would store, fp8 caches saturated the same way)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from plinth.ops.reference import fp8_limit


@triton.jit
def _cached(x, LIMIT: tl.constexpr, cache_ptr):
    """``x`` as the cache stores it: saturated to an fp8 format's range (LIMIT > 0), then cast."""
    if LIMIT > 0:
        x = tl.clamp(x.to(tl.float32), -LIMIT, LIMIT)
    return x.to(cache_ptr.dtype.element_ty)


@triton.jit
def _rotate_heads(src_ptr, dst_ptr, stride_src, token, cos, sin, offs_h, offs_i, offs_p, w_ptr, eps,
                  cache_ptr, slot, stride_cs,
                  NUM_HEADS: tl.constexpr, HEAD: tl.constexpr, HALF: tl.constexpr, ROT: tl.constexpr,
                  NEOX: tl.constexpr, NORM: tl.constexpr, WRITE: tl.constexpr, LIMIT: tl.constexpr):
    h_ok = offs_h < NUM_HEADS
    i_ok = offs_i < HALF
    if NEOX:
        i1 = offs_i
        i2 = offs_i + HALF
    else:
        i1 = 2 * offs_i
        i2 = 2 * offs_i + 1
    base_src = src_ptr + token.to(tl.int64) * stride_src + offs_h[:, None] * HEAD
    base_dst = dst_ptr + token.to(tl.int64) * (NUM_HEADS * HEAD) + offs_h[:, None] * HEAD
    mask = h_ok[:, None] & i_ok[None, :]
    x1 = tl.load(base_src + i1[None, :], mask=mask, other=0.0)
    x2 = tl.load(base_src + i2[None, :], mask=mask, other=0.0)
    a = x1.to(tl.float32)
    b = x2.to(tl.float32)
    if ROT < HEAD:
        p_ok = h_ok[:, None] & (offs_p[None, :] < HEAD - ROT)
        rest = tl.load(base_src + ROT + offs_p[None, :], mask=p_ok, other=0.0)
    if NORM:  # per-head RMSNorm first, rounded as the reference: w * (x * rsqrt(mean(x^2) + eps)).to(dtype)
        ss = tl.sum(a * a, 1) + tl.sum(b * b, 1)
        if ROT < HEAD:
            rf = rest.to(tl.float32)
            ss += tl.sum(rf * rf, 1)
        r = tl.rsqrt(ss / HEAD + eps)[:, None]
        w1 = tl.load(w_ptr + i1, mask=i_ok, other=0.0)
        w2 = tl.load(w_ptr + i2, mask=i_ok, other=0.0)
        a = (w1[None, :] * (a * r).to(x1.dtype)).to(tl.float32)
        b = (w2[None, :] * (b * r).to(x1.dtype)).to(tl.float32)
        if ROT < HEAD:
            wp = tl.load(w_ptr + ROT + offs_p, mask=offs_p < HEAD - ROT, other=0.0)
            rest = (wp[None, :] * (rf * r).to(x1.dtype)).to(x1.dtype)
    o1 = (a * cos[None, :] - b * sin[None, :]).to(x1.dtype)
    o2 = (b * cos[None, :] + a * sin[None, :]).to(x1.dtype)
    tl.store(base_dst + i1[None, :], o1, mask=mask)
    tl.store(base_dst + i2[None, :], o2, mask=mask)
    if ROT < HEAD:
        tl.store(base_dst + ROT + offs_p[None, :], rest, mask=p_ok)
    if WRITE:  # the rotated rows into the cache slot too (a negative slot is padding: nothing written)
        base_c = cache_ptr + slot * stride_cs + offs_h[:, None] * HEAD
        tl.store(base_c + i1[None, :], _cached(o1, LIMIT, cache_ptr), mask=mask & (slot >= 0))
        tl.store(base_c + i2[None, :], _cached(o2, LIMIT, cache_ptr), mask=mask & (slot >= 0))
        if ROT < HEAD:
            tl.store(base_c + ROT + offs_p[None, :], _cached(rest, LIMIT, cache_ptr), mask=p_ok & (slot >= 0))


@triton.jit
def _rotary_kernel(
    pos_ptr, q_ptr, k_ptr, q_out_ptr, k_out_ptr, cache_ptr, stride_q, stride_k, stride_c, qw_ptr, kw_ptr, eps,
    v_ptr, stride_v, k_cache_ptr, v_cache_ptr, slot_ptr, stride_cs,
    NUM_Q: tl.constexpr, NUM_K: tl.constexpr, HQ_P2: tl.constexpr, HK_P2: tl.constexpr,
    HEAD: tl.constexpr, HALF: tl.constexpr, HALF_P2: tl.constexpr, ROT: tl.constexpr,
    PASS_P2: tl.constexpr, NEOX: tl.constexpr, NORM: tl.constexpr, WRITE: tl.constexpr, LIMIT: tl.constexpr,
    V_P2: tl.constexpr,
):
    token = tl.program_id(0)
    pos = tl.load(pos_ptr + token).to(tl.int64)
    offs_i = tl.arange(0, HALF_P2)
    cos = tl.load(cache_ptr + pos * stride_c + offs_i, mask=offs_i < HALF, other=0.0).to(tl.float32)
    sin = tl.load(cache_ptr + pos * stride_c + HALF + offs_i, mask=offs_i < HALF, other=0.0).to(tl.float32)
    offs_p = tl.arange(0, PASS_P2)
    slot = -1
    if WRITE:
        slot = tl.load(slot_ptr + token).to(tl.int64)
    _rotate_heads(q_ptr, q_out_ptr, stride_q, token, cos, sin, tl.arange(0, HQ_P2), offs_i, offs_p, qw_ptr, eps,
                  k_cache_ptr, slot, stride_cs, NUM_Q, HEAD, HALF, ROT, NEOX, NORM, False, LIMIT)
    _rotate_heads(k_ptr, k_out_ptr, stride_k, token, cos, sin, tl.arange(0, HK_P2), offs_i, offs_p, kw_ptr, eps,
                  k_cache_ptr, slot, stride_cs, NUM_K, HEAD, HALF, ROT, NEOX, NORM, WRITE, LIMIT)
    if WRITE:
        offs_v = tl.arange(0, V_P2)
        v_ok = (offs_v < NUM_K * HEAD) & (slot >= 0)
        v = tl.load(v_ptr + token.to(tl.int64) * stride_v + offs_v, mask=v_ok)
        tl.store(v_cache_ptr + slot * stride_cs + offs_v, _cached(v, LIMIT, v_cache_ptr), mask=v_ok)


def _rows(x: torch.Tensor, head_size: int) -> torch.Tensor:
    x2 = x.reshape(x.shape[0], -1) if x.dim() == 3 and x.stride(1) == head_size and x.stride(2) == 1 else x
    if x2.dim() != 2 or x2.stride(-1) != 1:
        x2 = x.reshape(x.shape[0], -1).contiguous()
    return x2


def rotary_embedding(
    positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, head_size: int,
    cos_sin_cache: torch.Tensor, is_neox_style: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``plinth.ops.reference.rotary_embedding``: new tensors, inputs untouched."""
    return _launch(positions, query, key, head_size, cos_sin_cache, is_neox_style, None, None, 0.0)


def qk_norm_rotary(
    positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, head_size: int,
    cos_sin_cache: torch.Tensor, is_neox_style: bool, q_weight: torch.Tensor, k_weight: torch.Tensor, eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``plinth.ops.reference.qk_norm_rotary``: per-head RMSNorm of q and k, then rotary."""
    return _launch(positions, query, key, head_size, cos_sin_cache, is_neox_style, q_weight.contiguous(),
                   k_weight.contiguous(), eps)


def rotary_write_kv(
    positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor,
    slot_mapping: torch.Tensor, head_size: int, cos_sin_cache: torch.Tensor, is_neox_style: bool = True,
    q_weight: torch.Tensor | None = None, k_weight: torch.Tensor | None = None, eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rotary_embedding`` (``qk_norm_rotary`` with the weights) of q and k, and ``write_kv`` of the rotated k and
    ``value`` into ``kv_cache`` ``[2, blocks, block_size, kv_heads, head_size]`` at ``slot_mapping`` (negative:
    skipped), in one launch. Returns the rotated ``(query, key)``; the cache holds what ``write_kv`` of them stores."""
    num_kv_heads = kv_cache.shape[-2]
    if kv_cache.shape[-1] != head_size or kv_cache.stride(-1) != 1 or kv_cache.stride(-2) != head_size \
            or kv_cache.stride(2) != num_kv_heads * head_size:
        raise ValueError("rotary_write_kv needs a cache whose (block_size, heads, head_size) part is contiguous")
    v = _rows(value, head_size)
    write = (v, v.stride(0), kv_cache[0], kv_cache[1], slot_mapping, kv_cache.stride(2),
             fp8_limit(kv_cache.dtype) or 0.0)
    norm = q_weight is not None
    return _launch(positions, query, key, head_size, cos_sin_cache, is_neox_style,
                   q_weight.contiguous() if norm else None, k_weight.contiguous() if norm else None, eps, write)


def _launch(positions, query, key, head_size, cos_sin_cache, is_neox_style, q_weight, k_weight, eps, write=None):
    q, k = _rows(query, head_size), _rows(key, head_size)
    q_out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    k_out = torch.empty(key.shape, dtype=key.dtype, device=key.device)
    num_tokens = positions.numel()
    rot = cos_sin_cache.shape[-1]
    if cos_sin_cache.stride(-1) != 1:
        cos_sin_cache = cos_sin_cache.contiguous()
    num_q, num_k = q.shape[1] // head_size, k.shape[1] // head_size
    norm = q_weight is not None
    v, stride_v, k_cache, v_cache, slots, stride_cs, limit = write or (k, 0, k, k, positions, 0, 0.0)
    if num_tokens:
        _rotary_kernel[(num_tokens,)](
            positions, q, k, q_out, k_out, cos_sin_cache, q.stride(0), k.stride(0), cos_sin_cache.stride(0),
            q_weight if norm else q, k_weight if norm else k, float(eps),
            v, stride_v, k_cache, v_cache, slots, stride_cs,
            NUM_Q=num_q, NUM_K=num_k, HQ_P2=triton.next_power_of_2(num_q), HK_P2=triton.next_power_of_2(num_k),
            HEAD=head_size, HALF=rot // 2, HALF_P2=triton.next_power_of_2(rot // 2), ROT=rot,
            PASS_P2=triton.next_power_of_2(max(head_size - rot, 1)), NEOX=is_neox_style, NORM=norm,
            WRITE=write is not None, LIMIT=limit, V_P2=triton.next_power_of_2(num_k * head_size), num_warps=4,
        )
    return q_out, k_out
