"""Fused sampling for greedy and plain-temperature rows: one pass over each row's logits.

Gumbel-max: row ``i`` returns ``argmax_j(logits[i, j] / T_i + G_ij)`` with ``G_ij = -log(-log U_ij)``,
which is an exact draw from ``softmax(logits[i] / T_i)``; rows with ``T_i == 0`` return the plain
argmax (first index among ties, like ``torch.argmax``). ``U_ij`` comes from a counter-based hash of
``(seeds[i], j)`` — the same hash as ``plinth.ops.reference.sample`` — so a row's token depends on
its logits, temperature and seed only, never on the rest of the batch.

The vocabulary is split over ``num_splits`` programs per row (enough programs to fill the GPU at
small batches); each writes its best (value, index) and a tiny second kernel picks the winner.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _mix32(x):
    """lowbias32 (Chris Wellons): a uint32 bijection with full avalanche."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    x = x ^ (x >> 16)
    return x


@triton.jit(do_not_specialize=["num_splits"])  # the split count follows the batch size
def _sample_partial_kernel(
    logits_ptr, stride_row, temp_ptr, seed_ptr, best_val_ptr, best_idx_ptr,
    vocab, chunk, num_splits,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    split = tl.program_id(1)
    start = split * chunk
    end = tl.minimum(start + chunk, vocab)
    temp = tl.load(temp_ptr + row)
    seed = tl.load(seed_ptr + row)
    lo = (seed & 0xFFFFFFFF).to(tl.uint32)
    hi = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    k1 = _mix32(hi ^ 0x1B873593)
    k2 = _mix32(lo ^ k1)
    row_ptr = logits_ptr + row.to(tl.int64) * stride_row
    best_val = tl.full([BLOCK], float("-inf"), tl.float32)
    best_idx = tl.full([BLOCK], 0, tl.int32)
    lanes = tl.arange(0, BLOCK)
    greedy = temp == 0.0
    inv_t = 1.0 / tl.where(greedy, 1.0, temp)
    for base in range(start, end, BLOCK):
        offs = base + lanes
        inside = offs < end
        x = tl.load(row_ptr + offs, mask=inside, other=float("-inf")).to(tl.float32)
        if not greedy:
            h = _mix32(_mix32(offs.to(tl.uint32) + k1) ^ k2)
            u = ((h >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)  # (0, 1), 24 bits
            x = x * inv_t - tl.log(-tl.log(u))
            x = tl.where(inside, x, float("-inf"))
        better = x > best_val
        best_val = tl.where(better, x, best_val)
        best_idx = tl.where(better, offs, best_idx)
    top = tl.max(best_val, axis=0)
    cand = tl.where(best_val == top, best_idx, 2147483647)
    idx = tl.min(cand, axis=0)
    idx = tl.where(idx == 2147483647, start, idx)  # an all -inf chunk: its first index
    tl.store(best_val_ptr + row * num_splits + split, top)
    tl.store(best_idx_ptr + row * num_splits + split, idx)


@triton.jit(do_not_specialize=["num_splits"])
def _sample_reduce_kernel(best_val_ptr, best_idx_ptr, out_ptr, num_splits, SPLITS: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, SPLITS)
    inside = offs < num_splits
    val = tl.load(best_val_ptr + row * num_splits + offs, mask=inside, other=float("-inf"))
    idx = tl.load(best_idx_ptr + row * num_splits + offs, mask=inside, other=2147483647)
    top = tl.max(val, axis=0)
    # splits cover the vocabulary in order, so the smallest index among the maxima is the first
    cand = tl.where((val == top) & inside, idx, 2147483647)
    best = tl.min(cand, axis=0)
    best = tl.where(best == 2147483647, 0, best)
    tl.store(out_ptr + row, best.to(tl.int64))


_MAX_SPLITS = 64  # one reduce variant for every batch size (a new one would compile mid-run)


def _num_splits(rows: int, vocab: int, block: int) -> int:
    target = max(1, 512 // max(rows, 1))  # ~512 programs keep every SM busy
    return max(1, min(target, triton.cdiv(vocab, 4 * block), _MAX_SPLITS))


def sample(logits: torch.Tensor, temperature: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """``[B]`` int64 token ids; see the module docstring and ``plinth.ops.reference.sample``."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [batch, vocab], got shape {tuple(logits.shape)}")
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    rows, vocab = logits.shape
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows == 0:
        return out
    block = 2048
    splits = _num_splits(rows, vocab, block)
    chunk = triton.cdiv(triton.cdiv(vocab, splits), block) * block
    splits = triton.cdiv(vocab, chunk)
    best_val = torch.empty(rows * splits, dtype=torch.float32, device=logits.device)
    best_idx = torch.empty(rows * splits, dtype=torch.int32, device=logits.device)
    temperature = temperature.to(torch.float32).contiguous()
    seeds = seeds.to(torch.int64).contiguous()
    _sample_partial_kernel[(rows, splits)](
        logits, logits.stride(0), temperature, seeds, best_val, best_idx, vocab, chunk, splits,
        BLOCK=block, num_warps=8,
    )
    _sample_reduce_kernel[(rows,)](best_val, best_idx, out, splits,
                                   SPLITS=_MAX_SPLITS, num_warps=1)
    return out
