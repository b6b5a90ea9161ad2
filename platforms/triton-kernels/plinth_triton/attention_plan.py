"""Launch plans of the paged attention kernel: row and KV tiles, warps, stages, KV splits, decode order.

Host-side choices only (no kernels): ``plan_blocks`` for every launch, ``decode_launch`` and
``decode_splits`` for decode steps (measured on the H100; the figures are in the docstrings), and
``decode_rows_first``, the device-side order of a mixed step's requests.
"""

from __future__ import annotations

import os

import torch
import triton


def _launch_override() -> tuple[int, int, int] | None:
    """``PLINTH_TRITON_DECODE_LAUNCH="tile,warps,stages"`` replaces the decode launch plan (A/B runs)."""
    text = os.environ.get("PLINTH_TRITON_DECODE_LAUNCH")
    if not text:
        return None
    try:
        tile_n, warps, stages = (int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"PLINTH_TRITON_DECODE_LAUNCH={text!r}: give 'tile,warps,stages', e.g. '64,4,2'") from None
    return tile_n, warps, stages


_DECODE_OVERRIDE = _launch_override()


def decode_launch(group: int, head_size: int, dtype: torch.dtype, num_reqs: int | None = None,
                  num_splits: int = 1) -> tuple[int, int, int]:
    """``(TILE_N, num_warps, num_stages)`` of a decode launch (one query per request) of ``num_reqs``.

    Four or more query heads per KV head (Llama-8B: 4) stream 128-token tiles through 4 stages: at
    batch 200 with contexts U[1024, 2048] the H100 read KV at 2,938 GB/s against 2,828 with 64-token
    tiles, 2 stages (within 1 % at batch 100-256 with contexts near 1,100). Fewer (Qwen3-0.6B: 2) keep
    64-token tiles, 2 stages at batch 96-256, and take 128-token tiles, 3 stages for unsplit batches
    up to 64 (a run's tail: contexts U[600, 2000], batch 24: 1,931 against 1,558 GB/s; 32: 2,355 / 2,076;
    64: 2,645 / 2,501). ``bench_attention_configs.py --llama-decode``, ``bench_decode_plans.py tail``, 2026-11-23.
    """
    if _DECODE_OVERRIDE is not None:
        return _DECODE_OVERRIDE
    if head_size > 128 or dtype == torch.float32:
        return 32, 4, 2
    if group >= 4:
        return 128, 4, 4
    if num_reqs is not None and num_reqs <= 64 and num_splits == 1:
        return 128, 4, 3
    return 64, 4, 2


def decode_splits(num_reqs: int, num_kv_heads: int, group: int, num_sms: int) -> int:
    """KV splits per request for a decode step of ``num_reqs`` (1 = none).

    Batches that start fewer than 1.5 waves of programs (one per request and KV head) split each
    request's KV until the programs reach 3.75 waves where fewer than 4 query heads share a KV head
    (Qwen3-0.6B), 2.25 waves otherwise (Llama-8B). Graph-timed on the H100 (``bench_decode_plans.py
    small-splits``, contexts U[600, 2000], 2026-11-23), GB/s of KV, the rule until now against this one:
    Qwen3 heads b8 1,692 / 1,916, b12 1,542 / 1,964, b16 1,787 / 2,119, b20 2,210 / 2,380, b24 2,064 /
    2,360; Llama-8B heads b12 1,746 / 1,878, b16 1,967 / 2,015, b20 2,182 / 2,305, b24 1,988 / 2,236.
    From batch 32 (256 programs) no split measured better."""
    programs = max(1, num_reqs * num_kv_heads)
    if 2 * programs >= 3 * num_sms:
        return 1
    target = num_sms * (2.25 if group >= 4 else 3.75)
    splits = 1
    while splits < 16 and programs * splits < target:
        splits *= 2
    return splits


def plan_blocks(group: int, head_size: int, max_query_len: int, dtype: torch.dtype, num_reqs: int | None = None,
                num_splits: int = 1) -> tuple[int, int, int]:
    """``(BLOCK_M, BLOCK_Q, TILE_N)`` for a batch: small row tiles for decode, large for prefill.

    Decode takes its KV tile from ``decode_launch``. With programs started longest request first
    (``order``), T3 measured 19,829 out tok/s with 64-token tiles against 19,494 with 128-token
    tiles for batches of 128+ and 19,547 for 64+ (H100, one device call, 2026-11-23).
    """
    group_p2 = triton.next_power_of_2(group)
    if max_query_len == 1:
        block_m = max(16, group_p2)
    elif dtype == torch.float32 or head_size > 128:
        block_m = max(32, group_p2)
    else:
        block_m = max(64 if max_query_len <= 64 else 128, group_p2)
    if max_query_len == 1:
        tile_n = decode_launch(group, head_size, dtype, num_reqs, num_splits)[0]
    else:
        tile_n = 32 if (head_size > 128 or dtype == torch.float32) else 64
    return block_m, max(1, block_m // group), tile_n


def decode_rows_first(query_start_loc: torch.Tensor, seq_lens: torch.Tensor, num_reqs: int) -> torch.Tensor:
    """The requests of a mixed step, those with one query first (longest context first), then the rest.

    Computed on the device (no sync); ``paged_attention``'s ``decode_rows`` says how many lead."""
    q_lens = query_start_loc[1:num_reqs + 1] - query_start_loc[:num_reqs]
    return torch.argsort(torch.where(q_lens == 1, seq_lens[:num_reqs], -1), descending=True)
