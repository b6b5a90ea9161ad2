"""Causal attention of fresh prompts (no cached context) over the step's own keys and values.

A request whose whole sequence so far is in this step needs no KV cache reads: its keys and values
are the rows of the step's ``k``/``v``. Reading them densely lets the Hopper copy engine (tensor
descriptors, TMA) stream the tiles instead of gathering them through the block table. Otherwise the
design is the paged kernel's: one program handles ``BLOCK_Q`` query tokens of one request for all
``GROUP`` query heads of one KV head (``BLOCK_Q * GROUP`` rows share every K/V tile), programs are
numbered per request as ``query_start_loc[i] // BLOCK_Q + i + local``, online softmax in fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from plinth_triton.attention_kernel import _locate, _softmax_step

LOG2E = 1.4426950408889634


@triton.jit
def _prefill_tile(q, k_desc, v_desc, key0, kv_head, start, q_pos, m_i, l_i, acc, qk_scale,
                  BLOCK_N: tl.constexpr, HEAD: tl.constexpr, MASKED: tl.constexpr, IEEE: tl.constexpr):
    k = k_desc.load([key0 + start, kv_head, 0]).reshape(BLOCK_N, HEAD)
    v = v_desc.load([key0 + start, kv_head, 0]).reshape(BLOCK_N, HEAD)
    if IEEE:
        s = tl.dot(q, k.T, input_precision="ieee") * qk_scale
    else:
        s = tl.dot(q, k.T) * qk_scale
    if MASKED:
        key_pos = start + tl.arange(0, BLOCK_N)
        s = tl.where(key_pos[None, :] <= q_pos[:, None], s, float("-inf"))
    return _softmax_step(s, v, m_i, l_i, acc, IEEE)


@triton.jit(do_not_specialize=["num_reqs"])
def _prefill_attention_kernel(
    q_desc, k_desc, v_desc, out_ptr, qsl_ptr, seq_lens_ptr, num_reqs, qk_scale, stride_ot, stride_oh,
    GROUP: tl.constexpr, HEAD: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr, IEEE: tl.constexpr,
    WS: tl.constexpr = False,
):
    kv_head = tl.program_id(1)
    req, q_start, q_len, q_block = _locate(qsl_ptr, tl.program_id(0), num_reqs, BLOCK_Q)
    if q_block * BLOCK_Q >= q_len or tl.load(seq_lens_ptr + req) != q_len:  # done, or has cached context
        return
    BLOCK_M: tl.constexpr = BLOCK_Q * GROUP
    tok0 = q_start + q_block * BLOCK_Q
    q = q_desc.load([tok0, kv_head * GROUP, 0]).reshape(BLOCK_M, HEAD)  # rows: token-major, then head
    rows = tl.arange(0, BLOCK_M)
    q_pos = q_block * BLOCK_Q + rows // GROUP  # position in the request

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD], tl.float32)
    # keys below the block's first query are visible to every row; the rest up to its last query are masked
    tiles = tl.cdiv(tl.minimum(q_len, (q_block + 1) * BLOCK_Q), BLOCK_N)
    full_tiles = tl.minimum((q_block * BLOCK_Q) // BLOCK_N, tiles)
    for t in tl.range(0, full_tiles, warp_specialize=WS):
        m_i, l_i, acc = _prefill_tile(q, k_desc, v_desc, q_start, kv_head, t * BLOCK_N, q_pos, m_i, l_i, acc,
                                      qk_scale, BLOCK_N, HEAD, False, IEEE)
    for t in range(full_tiles, tiles):
        m_i, l_i, acc = _prefill_tile(q, k_desc, v_desc, q_start, kv_head, t * BLOCK_N, q_pos, m_i, l_i, acc,
                                      qk_scale, BLOCK_N, HEAD, True, IEEE)

    result = acc / l_i[:, None]
    token = tok0 + rows // GROUP
    head = kv_head * GROUP + rows % GROUP
    offs_d = tl.arange(0, HEAD)
    ok = (q_pos < q_len)[:, None]
    tl.store(out_ptr + token[:, None].to(tl.int64) * stride_ot + head[:, None] * stride_oh + offs_d[None, :],
             result.to(out_ptr.dtype.element_ty), mask=ok)


def plan_prefill(group: int, head_size: int, element_size: int) -> tuple[int, int, int, int, bool]:
    """``(BLOCK_Q, BLOCK_N, num_warps, num_stages, warp-specialized)``: 64 rows of query heads a program,
    64-key tiles, 3 stages, with fewer stages, then shorter key tiles, where K/V stages would pass 160 KB
    of shared memory (head size 256, fp32); 16-bit inputs run the unmasked KV loop warp-specialized
    (producer warps issue the TMA loads).

    H100, 2026-11-23 (``benchmarks/bench_prefill_attention.py``, 36 plans): best for T1's 16 x 1024
    Llama-8B heads (309 TFLOP/s; the paged kernel 207, torch's cuDNN SDPA 391) and for T3's 14 x 560
    Qwen3 heads (157; paged 97, cuDNN 140); 128-row plans were 5-20 % slower on both. 2026-11-24
    (``--ws``, one call): the warp-specialized loop 325 against 306 TFLOP/s on T1's shape, 154 against
    123 on T3's."""
    block_q, block_n, stages = max(1, 64 // group), 64, 3
    row_bytes = head_size * element_size

    def smem(stages: int, block_n: int) -> int:
        return stages * 2 * block_n * row_bytes + block_q * group * row_bytes

    while smem(stages, block_n) > 160 * 1024 and (stages > 2 or block_n > 16):
        if stages > 2:
            stages -= 1
        else:
            block_n //= 2
    return block_q, block_n, 4, stages, element_size == 2


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def dense_prefill_applies(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, out: torch.Tensor) -> bool:
    """Whether the dense kernel takes these tensors: power-of-two group and head size, the head
    dimension contiguous, and 16-byte aligned bases and strides (tensor descriptors)."""
    num_heads, head = query.shape[1:]
    kv_heads = key.shape[1]
    if num_heads % kv_heads or not _is_pow2(num_heads // kv_heads) or not _is_pow2(head) or head < 16:
        return False
    for t in (query, key, value, out):
        if t.dim() != 3 or t.stride(2) != 1 or t.data_ptr() % 16:
            return False
    return all(t.stride(i) * t.element_size() % 16 == 0 for t in (query, key, value) for i in (0, 1))


def dense_prefill_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, out: torch.Tensor, *,
    query_start_loc: torch.Tensor, seq_lens: torch.Tensor, num_reqs: int, scale: float,
    plan: tuple[int, int, int, int, bool] | None = None,
) -> torch.Tensor:
    """Causal attention of the fresh prompts among ``num_reqs`` requests: ``query [T, H, D]`` over
    ``key``/``value`` ``[T, KVH, D]`` (the same tokens), request ``i`` being tokens
    ``query_start_loc[i]:[i+1]``. Requests with cached context (``seq_lens[i]`` longer than their
    query) are left alone, their rows of ``out`` unwritten. Needs :func:`dense_prefill_applies`.
    """
    from triton.tools.tensor_descriptor import TensorDescriptor

    num_tokens, num_heads, head = query.shape
    kv_heads = key.shape[1]
    group = num_heads // kv_heads
    block_q, block_n, warps, stages, ws = plan or plan_prefill(group, head, query.element_size())
    q_desc = TensorDescriptor(query, list(query.shape), list(query.stride()), [block_q, group, head])
    k_desc = TensorDescriptor(key, list(key.shape), list(key.stride()), [block_n, 1, head])
    v_desc = TensorDescriptor(value, list(value.shape), list(value.stride()), [block_n, 1, head])
    grid = (num_tokens // block_q + num_reqs, kv_heads)
    _prefill_attention_kernel[grid](
        q_desc, k_desc, v_desc, out, query_start_loc, seq_lens, num_reqs, scale * LOG2E, out.stride(0),
        out.stride(1), GROUP=group, HEAD=head, BLOCK_Q=block_q, BLOCK_N=block_n, IEEE=query.dtype == torch.float32,
        num_warps=warps, num_stages=stages, WS=ws,
    )
    return out
