"""Unified varlen paged attention: prefill, decode and mixed batches in one kernel.

One program handles ``BLOCK_Q`` query tokens of one request for *all* query heads of one
KV head (GQA packing: ``BLOCK_M = BLOCK_Q * group`` rows share every K/V tile it loads),
and walks the request's KV blocks through its block table with an online softmax.
Programs are numbered per request as ``query_start_loc[i] // BLOCK_Q + i + local``, so the
grid depends only on the (padded) token and request counts: graph-capture safe.

Split-KV (``num_splits > 1``, used for decode at small batch): each program handles a
slice of the KV tiles and writes an unnormalised partial; ``_merge_splits`` combines them.

KV cache: the standard layout ``[2, num_blocks, block_size, num_kv_heads, head_size]``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from plinth_triton.attention_plan import decode_launch, plan_blocks

LOG2E = 1.4426950408889634


@triton.jit
def _find_request(qsl_ptr, target, num_reqs, BLOCK_Q: tl.constexpr):
    """Largest ``i`` with ``qsl[i] // BLOCK_Q + i <= target`` (binary search)."""
    lo = 0
    hi = num_reqs
    while lo < hi:
        mid = (lo + hi) // 2
        val = tl.load(qsl_ptr + mid) // BLOCK_Q + mid
        if val <= target:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@triton.jit
def _locate(qsl_ptr, pid, num_reqs, BLOCK_Q: tl.constexpr):
    """``(request, its first token, its query length, this program's query block)`` of program ``pid``."""
    req = _find_request(qsl_ptr, pid, num_reqs, BLOCK_Q)
    q_start = tl.load(qsl_ptr + req)
    q_len = tl.load(qsl_ptr + req + 1) - q_start
    return req, q_start, q_len, pid - (q_start // BLOCK_Q + req)


@triton.jit
def _softmax_step(s, v, m_i, l_i, acc, IEEE: tl.constexpr):
    """One key tile of the online softmax: scores ``s`` (log2 units, -inf where masked) against ``v``."""
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with every key so far masked
    p = tl.exp2(s - m_safe[:, None])
    alpha = tl.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    if IEEE:
        pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
    else:
        pv = tl.dot(p.to(v.dtype), v)
    return m_new, l_i, acc * alpha[:, None] + pv


@triton.jit
def _attend_tile(
    q, k_ptr, v_ptr, table, kv_head, start, hi, q_pos, m_i, l_i, acc, offs_d, d_ok, scale, soft_cap,
    stride_kb, stride_ks, stride_kh, BLOCK_SIZE: tl.constexpr, HEAD: tl.constexpr, HEAD_P2: tl.constexpr,
    TILE_N: tl.constexpr, WINDOW: tl.constexpr, USE_CAP: tl.constexpr, IEEE: tl.constexpr, MASKED: tl.constexpr,
):
    """One KV tile of the online softmax; ``MASKED=False`` only for tiles every row may fully see."""
    offs_n = start + tl.arange(0, TILE_N)
    n_ok = offs_n < hi
    if MASKED:
        phys = tl.load(table + offs_n // BLOCK_SIZE, mask=n_ok, other=0).to(tl.int64)
    else:
        phys = tl.load(table + offs_n // BLOCK_SIZE).to(tl.int64)
    kv_off = phys * stride_kb + (offs_n % BLOCK_SIZE) * stride_ks + kv_head * stride_kh
    if MASKED:
        k = tl.load(k_ptr + kv_off[None, :] + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off[:, None] + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :], other=0.0)
    elif HEAD == HEAD_P2:
        k = tl.load(k_ptr + kv_off[None, :] + offs_d[:, None])
        v = tl.load(v_ptr + kv_off[:, None] + offs_d[None, :])
    else:
        k = tl.load(k_ptr + kv_off[None, :] + offs_d[:, None], mask=d_ok[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off[:, None] + offs_d[None, :], mask=d_ok[None, :], other=0.0)
    k = k.to(q.dtype)  # an fp8 cache (scale 1.0) is read in the query's dtype; otherwise a no-op
    v = v.to(q.dtype)
    if IEEE:
        s = tl.dot(q, k, input_precision="ieee")
    else:
        s = tl.dot(q, k)
    if USE_CAP:
        x = s * (scale / soft_cap)
        s = soft_cap * (1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)) * 1.4426950408889634
    else:
        s = s * (scale * 1.4426950408889634)
    if MASKED:
        allowed = n_ok[None, :] & (offs_n[None, :] <= q_pos[:, None])
        if WINDOW > 0:
            allowed = allowed & (offs_n[None, :] > q_pos[:, None] - WINDOW)
        s = tl.where(allowed, s, float("-inf"))
    return _softmax_step(s, v, m_i, l_i, acc, IEEE)


# Request and token counts change every step: specialising on them (== 1, divisible by 16) would
# compile new variants in the middle of a run, so they stay plain runtime integers.
@triton.jit(do_not_specialize=["num_reqs", "num_tokens"])
def _paged_attention_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, part_ptr, ml_ptr,
    block_table_ptr, seq_lens_ptr, qsl_ptr, order_ptr,
    scale, soft_cap, num_reqs, num_tokens,
    stride_qt, stride_qh, stride_ot, stride_oh,
    stride_kb, stride_ks, stride_kh, stride_bt,
    NUM_HEADS: tl.constexpr, BLOCK_SIZE: tl.constexpr, GROUP: tl.constexpr,
    HEAD: tl.constexpr, HEAD_P2: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_Q: tl.constexpr,
    TILE_N: tl.constexpr, NUM_SPLITS: tl.constexpr, WINDOW: tl.constexpr, USE_CAP: tl.constexpr,
    IEEE: tl.constexpr, ORDERED: tl.constexpr, SKIP_FRESH: tl.constexpr, SKIP_DECODE: tl.constexpr,
):
    split = tl.program_id(2)
    if ORDERED:
        # one query per request: program p serves the request of rank p // KV heads in ``order``
        # (longest first), all KV heads of a request next to each other
        pid = tl.program_id(0)
        kv_head = pid % (NUM_HEADS // GROUP)
        req = tl.load(order_ptr + pid // (NUM_HEADS // GROUP))
        q_block = 0
        q_start = tl.load(qsl_ptr + req)
        q_len = tl.load(qsl_ptr + req + 1) - q_start
    else:
        kv_head = tl.program_id(1)
        req, q_start, q_len, q_block = _locate(qsl_ptr, tl.program_id(0), num_reqs, BLOCK_Q)
        if SKIP_DECODE and q_len == 1:  # a mixed step's decode row: the decode launch serves it
            return
    if q_block * BLOCK_Q >= q_len:
        return
    seq_len = tl.load(seq_lens_ptr + req)
    ctx_len = seq_len - q_len
    if SKIP_FRESH and ctx_len == 0:  # a fresh prompt: the dense prefill kernel serves it
        return

    offs_m = tl.arange(0, BLOCK_M)
    q_idx = q_block * BLOCK_Q + offs_m // GROUP
    head = kv_head * GROUP + offs_m % GROUP
    row_ok = (offs_m // GROUP < BLOCK_Q) & (q_idx < q_len)
    offs_d = tl.arange(0, HEAD_P2)
    d_ok = offs_d < HEAD
    token = q_start + q_idx
    q = tl.load(q_ptr + token[:, None] * stride_qt + head[:, None] * stride_qh + offs_d[None, :],
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    q_pos = ctx_len + q_idx

    hi = tl.minimum(seq_len, ctx_len + (q_block + 1) * BLOCK_Q)
    lo = 0
    if WINDOW > 0:
        lo = tl.maximum(0, ctx_len + q_block * BLOCK_Q - WINDOW + 1)
        lo = (lo // TILE_N) * TILE_N
    num_tiles = tl.cdiv(hi - lo, TILE_N)
    t_begin = 0
    t_end = num_tiles
    if NUM_SPLITS > 1:
        per_split = tl.cdiv(num_tiles, NUM_SPLITS)
        t_begin = split * per_split
        t_end = tl.minimum(t_begin + per_split, num_tiles)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_P2], tl.float32)
    table = block_table_ptr + req.to(tl.int64) * stride_bt
    # Tiles whose keys all precede the block's first query are visible to every row: no mask there.
    full_end = t_begin
    if WINDOW == 0:
        full_end = tl.minimum(tl.maximum((ctx_len + q_block * BLOCK_Q + 1) // TILE_N, t_begin), t_end)
    for t in range(t_begin, full_end):
        m_i, l_i, acc = _attend_tile(
            q, k_ptr, v_ptr, table, kv_head, lo + t * TILE_N, hi, q_pos, m_i, l_i, acc, offs_d, d_ok, scale,
            soft_cap, stride_kb, stride_ks, stride_kh, BLOCK_SIZE, HEAD, HEAD_P2, TILE_N, WINDOW, USE_CAP, IEEE,
            False)
    for t in range(full_end, t_end):
        m_i, l_i, acc = _attend_tile(
            q, k_ptr, v_ptr, table, kv_head, lo + t * TILE_N, hi, q_pos, m_i, l_i, acc, offs_d, d_ok, scale,
            soft_cap, stride_kb, stride_ks, stride_kh, BLOCK_SIZE, HEAD, HEAD_P2, TILE_N, WINDOW, USE_CAP, IEEE,
            True)

    if NUM_SPLITS == 1:
        result = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
        tl.store(out_ptr + token[:, None] * stride_ot + head[:, None] * stride_oh + offs_d[None, :],
                 result.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
    else:
        row = (split * num_tokens + token).to(tl.int64) * NUM_HEADS + head
        tl.store(part_ptr + row[:, None] * HEAD_P2 + offs_d[None, :], acc, mask=row_ok[:, None])
        tl.store(ml_ptr + row * 2, m_i, mask=row_ok)
        tl.store(ml_ptr + row * 2 + 1, l_i, mask=row_ok)


@triton.jit(do_not_specialize=["num_reqs", "num_tokens"])
def _merge_splits_kernel(
    out_ptr, part_ptr, ml_ptr, qsl_ptr, num_reqs, num_tokens, stride_ot, stride_oh,
    NUM_HEADS: tl.constexpr, HEAD: tl.constexpr, HEAD_P2: tl.constexpr, NUM_SPLITS: tl.constexpr,
):
    token = tl.program_id(0)
    head = tl.program_id(1)
    if token >= tl.load(qsl_ptr + num_reqs):
        return
    offs_s = tl.arange(0, NUM_SPLITS)
    offs_d = tl.arange(0, HEAD_P2)
    rows = (offs_s * num_tokens + token).to(tl.int64) * NUM_HEADS + head
    m = tl.load(ml_ptr + rows * 2)
    l_s = tl.load(ml_ptr + rows * 2 + 1)
    m_max = tl.max(m, 0)
    m_max = tl.where(m_max == float("-inf"), 0.0, m_max)
    w = tl.where(l_s > 0.0, tl.exp2(m - m_max), 0.0)
    part = tl.load(part_ptr + rows[:, None] * HEAD_P2 + offs_d[None, :])
    part = tl.where(w[:, None] > 0.0, part, 0.0)
    total = tl.sum(w * l_s, 0)
    result = tl.sum(part * w[:, None], 0) / tl.where(total == 0.0, 1.0, total)
    tl.store(out_ptr + token * stride_ot + head * stride_oh + offs_d, result.to(out_ptr.dtype.element_ty),
             mask=offs_d < HEAD)


def paged_attention(
    query: torch.Tensor, kv_cache: torch.Tensor, out: torch.Tensor, *, query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor, block_table: torch.Tensor, num_reqs: int, max_query_len: int,
    scale: float, sliding_window: int | None = None, logits_soft_cap: float | None = None,
    num_splits: int = 1, order: torch.Tensor | None = None, decode_rows: int = 0,
    fresh_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Attention of ``query`` ``[T, H, D]`` over the paged cache into ``out`` (same shape).

    ``order`` in a decode batch (one query per request): a permutation of the requests, the longest
    first, in which their programs start (each split in turn); the wave's tail then holds short ones.
    In a step with longer queries, ``order`` begins with its ``decode_rows`` one-query requests
    (``decode_rows_first``): they take a launch with the decode plan, and the prefill-sized tiles of
    the main launch skip them (a one-query row in a 128-row tile wastes most of the tile's work).
    ``fresh_kv``: the step's own keys and values ``[T, KVH, D]``. Given, in a step with prompts,
    requests with no cached context (``seq_len == query_len``) are served by the dense prefill kernel
    (``prefill_attention.py``) where it applies, and the paged kernel skips them; the device decides
    per request, so the step needs no host sync.
    """
    num_tokens, num_heads, head_size = query.shape
    num_kv_heads = kv_cache.shape[3]
    group = num_heads // num_kv_heads
    num_splits = num_splits if max_query_len == 1 else 1
    block_m, block_q, tile_n = plan_blocks(group, head_size, max_query_len, query.dtype, num_reqs, num_splits)
    warps, stages = decode_launch(group, head_size, query.dtype, num_reqs, num_splits)[1:] \
        if max_query_len == 1 else (4, 2)
    head_p2 = triton.next_power_of_2(head_size)
    k_cache, v_cache = kv_cache[0], kv_cache[1]
    if query.stride(2) != 1 or out.stride(2) != 1 or k_cache.stride(3) != 1:
        raise ValueError("paged_attention needs the head dimension contiguous in query, out and the cache")
    if num_splits > 1:
        part = torch.empty(num_splits * num_tokens * num_heads, head_p2, dtype=torch.float32, device=query.device)
        ml = torch.empty(num_splits * num_tokens * num_heads, 2, dtype=torch.float32, device=query.device)
    else:
        part = ml = out
    ordered = order is not None and max_query_len == 1
    mixed_decodes = decode_rows if order is not None and max_query_len > 1 else 0
    skip_fresh = False
    if fresh_kv is not None and max_query_len > 1 and not sliding_window and not logits_soft_cap:
        from plinth_triton.prefill_attention import dense_prefill_applies, dense_prefill_attention

        if dense_prefill_applies(query, *fresh_kv, out):
            dense_prefill_attention(query, *fresh_kv, out, query_start_loc=query_start_loc, seq_lens=seq_lens,
                                    num_reqs=num_reqs, scale=scale)
            skip_fresh = True
    ieee = query.dtype == torch.float32

    def launch(grid, block_m, block_q, tile_n, warps, stages, splits, ordered, skip_fresh, skip_decode):
        _paged_attention_kernel[grid](
            query, k_cache, v_cache, out, part, ml, block_table, seq_lens, query_start_loc,
            order if ordered else seq_lens,
            scale, float(logits_soft_cap or 1.0), num_reqs, num_tokens,
            query.stride(0), query.stride(1), out.stride(0), out.stride(1),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), block_table.stride(0),
            NUM_HEADS=num_heads, BLOCK_SIZE=kv_cache.shape[2], GROUP=group, HEAD=head_size, HEAD_P2=head_p2,
            BLOCK_M=block_m, BLOCK_Q=block_q, TILE_N=tile_n, NUM_SPLITS=splits,
            WINDOW=int(sliding_window or 0), USE_CAP=bool(logits_soft_cap), IEEE=ieee, ORDERED=ordered,
            SKIP_FRESH=skip_fresh, SKIP_DECODE=skip_decode,
            # prefill and mixed: 4 warps, 2 stages (8 x 1024 Llama-8B heads: 200 TFLOP/s vs 187 with 8 warps /
            # 3 stages; 14 x 560 Qwen3: 123 vs 102); decode: decode_launch; benchmarks/bench_attention_configs.py
            num_warps=warps, num_stages=stages,
        )

    if mixed_decodes:
        # The step's decode rows first, as the unsplit decode launch of a decode step (the same compiled
        # variant: a one-token fresh prompt is served here and by the dense kernel alike, to the same values).
        d_block_m, d_block_q, d_tile_n = plan_blocks(group, head_size, 1, query.dtype, mixed_decodes)
        launch((mixed_decodes * num_kv_heads, 1, 1), d_block_m, d_block_q, d_tile_n,
               *decode_launch(group, head_size, query.dtype, mixed_decodes)[1:], 1, True, False, False)
    if ordered:
        grid = (num_reqs * num_kv_heads, 1, num_splits)
    else:
        grid = (num_tokens // block_q + num_reqs, num_kv_heads, num_splits)
    launch(grid, block_m, block_q, tile_n, warps, stages, num_splits, ordered, skip_fresh, mixed_decodes > 0)
    if num_splits > 1:
        _merge_splits_kernel[(num_tokens, num_heads)](
            out, part, ml, query_start_loc, num_reqs, num_tokens, out.stride(0), out.stride(1),
            NUM_HEADS=num_heads, HEAD=head_size, HEAD_P2=head_p2, NUM_SPLITS=num_splits, num_warps=4,
        )
    return out
