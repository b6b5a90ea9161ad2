"""Torch-native reference implementations of every op the platform contract names.

They are written for clarity, not speed: each is the oracle that platform kernels are
tested against, and the fallback the kernel registry returns when no platform kernel
supports a call. The KV-cache layout used here is the *standard* layout
``[2, num_blocks, block_size, num_kv_heads, head_size]`` (keys, then values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from plinth.platform.attention import CommonAttentionMetadata


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as in HF Llama: normalise in fp32, cast back, then scale by ``weight``."""
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def fused_add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``residual = x + residual``; returns ``(rms_norm(residual), residual)``."""
    summed = x + residual
    return rms_norm(summed, weight, eps), summed


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(x[..., :d]) * x[..., d:]`` for ``x`` of last dimension ``2d``."""
    d = x.shape[-1] // 2
    return F.silu(x[..., :d]) * x[..., d:]


def rotary_embedding(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox_style: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply rotary embeddings to ``query`` and ``key`` and return new tensors.

    ``query``/``key``: ``[num_tokens, num_heads * head_size]`` (or ``[..., heads, head_size]``).
    ``cos_sin_cache``: ``[max_position, rotary_dim]``, cos in the first half, sin in the second.
    Only the first ``rotary_dim`` features of each head rotate (partial rotary).
    ``is_neox_style`` rotates the two halves; otherwise interleaved pairs (GPT-J).
    """
    cos_sin = cos_sin_cache.index_select(0, positions.flatten().long())
    cos, sin = cos_sin.chunk(2, dim=-1)
    return _rotate(query, cos, sin, head_size, is_neox_style), _rotate(
        key, cos, sin, head_size, is_neox_style
    )


def qk_norm_rotary(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox_style: bool,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rms_norm`` of each q and k head (weights ``[head_size]``), then ``rotary_embedding``."""
    q = rms_norm(query.reshape(query.shape[0], -1, head_size), q_weight, eps).reshape(query.shape)
    k = rms_norm(key.reshape(key.shape[0], -1, head_size), k_weight, eps).reshape(key.shape)
    return rotary_embedding(positions, q, k, head_size, cos_sin_cache, is_neox_style)


def _rotate(x, cos, sin, head_size, is_neox_style):
    shape = x.shape
    x = x.reshape(shape[0], -1, head_size)
    rot_dim = cos.shape[-1] * 2
    x_rot, x_pass = x[..., :rot_dim].float(), x[..., rot_dim:]
    cos, sin = cos.unsqueeze(1).float(), sin.unsqueeze(1).float()
    if is_neox_style:
        x1, x2 = x_rot.chunk(2, dim=-1)
        rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    else:
        x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]
        rotated = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
    return torch.cat((rotated.to(x.dtype), x_pass), dim=-1).reshape(shape)


def write_kv(
    key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Write ``key``/``value`` ``[num_tokens, num_kv_heads, head_size]`` into their slots.

    An fp8 cache stores them saturated to the format's range (:func:`to_cache_dtype`).

    ``slot = block_id * block_size + offset``; a negative slot marks a padding token
    that is skipped.
    """
    num_kv_heads, head_size = kv_cache.shape[-2:]
    flat = kv_cache.view(2, -1, num_kv_heads, head_size)
    valid = slot_mapping >= 0
    slots = slot_mapping[valid].long()
    n = slot_mapping.shape[0]
    flat[0, slots] = to_cache_dtype(key[:n][valid], kv_cache.dtype)
    flat[1, slots] = to_cache_dtype(value[:n][valid], kv_cache.dtype)


def fp8_limit(dtype: torch.dtype) -> float | None:
    """The largest magnitude an fp8 ``dtype`` holds (cache writes saturate to it); None for other dtypes."""
    return float(torch.finfo(dtype).max) if dtype.itemsize == 1 and dtype.is_floating_point else None


def to_cache_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as the cache stores it: cast, saturated to the range of an fp8 ``dtype`` (scale 1.0)."""
    limit = fp8_limit(dtype)
    return x.to(dtype) if limit is None else x.float().clamp(-limit, limit).to(dtype)


def gather_kv(
    kv_cache: torch.Tensor, block_ids: torch.Tensor, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values ``[seq_len, num_kv_heads, head_size]`` of one sequence."""
    block_size = kv_cache.shape[2]
    positions = torch.arange(seq_len, device=kv_cache.device)
    blocks = block_ids.long()[positions // block_size]
    offsets = positions % block_size
    return kv_cache[0, blocks, offsets], kv_cache[1, blocks, offsets]


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    scale: float,
    *,
    sliding_window: int | None = None,
    logits_soft_cap: float | None = None,
) -> torch.Tensor:
    """Causal attention of the last ``len(query)`` positions of one sequence, in fp32.

    ``query``: ``[query_len, num_heads, head_size]``; ``key``/``value``:
    ``[seq_len, num_kv_heads, head_size]`` holding every position of the sequence.
    Query row ``i`` sits at absolute position ``seq_len - query_len + i``.
    """
    query_len, num_heads, _ = query.shape
    seq_len, num_kv_heads, _ = key.shape
    group = num_heads // num_kv_heads
    k = key.float().repeat_interleave(group, dim=1)
    v = value.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", query.float(), k) * scale
    if logits_soft_cap:
        scores = logits_soft_cap * torch.tanh(scores / logits_soft_cap)
    q_pos = torch.arange(seq_len - query_len, seq_len, device=query.device)[:, None]
    k_pos = torch.arange(seq_len, device=query.device)[None, :]
    allowed = k_pos <= q_pos
    if sliding_window:
        allowed &= k_pos > q_pos - sliding_window
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return torch.einsum("hqk,khd->qhd", probs, v).to(query.dtype)


def paged_attention(
    query: torch.Tensor,
    kv_cache: torch.Tensor,
    metadata: CommonAttentionMetadata,
    scale: float,
    *,
    sliding_window: int | None = None,
    logits_soft_cap: float | None = None,
) -> torch.Tensor:
    """Paged attention for any batch: prefills, decodes and chunked prefills mixed, GQA.

    ``query``: ``[num_tokens, num_heads, head_size]``, tokens of request ``i`` at
    ``query_start_loc[i]:query_start_loc[i+1]``; the cache already holds every
    position ``< seq_lens[i]`` (including the new tokens). Returns ``query``'s shape.
    """
    out = torch.zeros_like(query)
    starts = metadata.query_start_loc_cpu.tolist()
    seq_lens = metadata.seq_lens_cpu.tolist()
    for i, seq_len in enumerate(seq_lens):
        start, end = starts[i], starts[i + 1]
        if end == start:
            continue
        key, value = gather_kv(kv_cache, metadata.block_table[i], seq_len)
        out[start:end] = attention(
            query[start:end], key, value, scale,
            sliding_window=sliding_window, logits_soft_cap=logits_soft_cap,
        )
    return out


_U32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on uint32 values held in int64 (products wrap; the low 32 bits are exact)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _U32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _U32
    return x ^ (x >> 16)


def sample_uniforms(seeds: torch.Tensor, vocab: int) -> torch.Tensor:
    """``U [B, V]`` in (0, 1) for ``Op.SAMPLE``: a counter-based hash of ``(seeds[i], j)``, 24 bits."""
    seeds = seeds.to(torch.int64)
    lo, hi = seeds & _U32, (seeds >> 32) & _U32
    k1 = _mix32(hi ^ 0x1B873593).unsqueeze(1)
    k2 = _mix32(lo ^ k1.squeeze(1)).unsqueeze(1)
    j = torch.arange(vocab, dtype=torch.int64, device=seeds.device).unsqueeze(0)
    h = _mix32(_mix32((j + k1) & _U32) ^ k2)
    return ((h >> 8).to(torch.float32) + 0.5) * (1.0 / 16777216.0)


def sample(logits: torch.Tensor, temperature: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` ``[B, V]`` (any float dtype): ``[B]`` int64.

    ``temperature`` ``[B]`` float32, 0 marks a greedy row (plain argmax, first index among ties);
    other rows draw from ``softmax(logits / T)`` exactly, by Gumbel-max with uniforms that are a
    fixed function of ``(seeds[i], token index)`` (``seeds`` ``[B]`` int64, see
    :func:`sample_uniforms`): a row's token depends on its own logits, temperature and seed only.
    Callers pass a fresh seed per step (and a request's own seed stream where it is seeded).
    No top-k/top-p/min-p, penalties or masks: the sampler takes this op only for such batches.
    """
    x = logits.to(torch.float32)
    greedy = temperature == 0
    gumbel = -torch.log(-torch.log(sample_uniforms(seeds, x.shape[1])))
    noisy = x / torch.where(greedy, 1.0, temperature).unsqueeze(1) + gumbel
    return torch.where(greedy.unsqueeze(1), x, noisy).argmax(dim=-1)
