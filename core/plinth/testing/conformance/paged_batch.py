"""Random paged batches built through a backend's own KV layout, with their reference output.

Layout-agnostic: the cache is allocated with ``backend.kv_cache_shape`` and filled only
through ``impl.write_kv``; the expected output is ``plinth.ops.reference.attention`` over the
dense per-request keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from plinth.ops import reference
from plinth.platform import (
    AttentionBackend,
    AttentionImpl,
    AttentionLayerSpec,
    CommonAttentionMetadata,
)


def request_shapes(kind: str, block_size: int) -> list[tuple[int, int]]:
    """``(context_len, query_len)`` per request; lengths cross block boundaries."""
    bs = block_size
    if kind == "prefill":
        return [(0, bs + 5), (0, 3), (0, 1)]
    if kind == "decode":
        return [(0, 1), (1, 1), (bs - 1, 1), (bs, 1), (2 * bs + 3, 1), (5, 1)]
    if kind == "mixed":  # a fresh prefill, two chunked prefills, two decodes
        return [(0, bs + 5), (bs + 2, 7), (2 * bs - 1, 1), (3, 1), (bs // 2, bs)]
    if kind == "long_decode":  # long contexts, where split-KV kernels take another path
        return [(4096 - 1, 1), (1000, 1), (bs + 1, 1), (2500, 1)]
    raise ValueError(f"unknown batch kind {kind!r}; use prefill, decode, mixed or long_decode")


@dataclass
class PagedBatch:
    """One step's inputs after the context and new tokens were written to the cache."""

    query: torch.Tensor  # [num_tokens, num_heads, head_size], padded past num_actual_tokens
    key: torch.Tensor  # [num_tokens, num_kv_heads, head_size]: the new tokens
    value: torch.Tensor  # as key
    kv_cache: torch.Tensor  # backend.kv_cache_shape(...)
    common: CommonAttentionMetadata
    dense_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per request, every position, host

    def reference(self, spec: AttentionLayerSpec) -> torch.Tensor:
        """Expected ``[num_actual_tokens, num_heads, head_size]`` on the host."""
        starts = self.common.query_start_loc_cpu.tolist()
        query = self.query.cpu()
        return torch.cat([
            reference.attention(query[starts[i]:starts[i + 1]], k, v, spec.scale,
                                sliding_window=spec.sliding_window, logits_soft_cap=spec.logits_soft_cap)
            for i, (k, v) in enumerate(self.dense_kv)
        ])

    def run(self, backend: AttentionBackend, impl: AttentionImpl) -> torch.Tensor:
        """The backend's forward into a NaN-filled ``out``; returns the real tokens' rows."""
        out = torch.full_like(self.query, float("nan"))
        returned = impl.forward(self.query, self.key, self.value, self.kv_cache,
                                backend.build_metadata(self.common), out)
        n = self.common.num_actual_tokens
        if returned is not None and not torch.equal(returned[:n], out[:n]):
            raise AssertionError("forward must write into `out` and return it")
        return out[:n]


def make_paged_batch(
    backend: AttentionBackend,
    impl: AttentionImpl,
    spec: AttentionLayerSpec,
    shapes: list[tuple[int, int]],
    block_size: int,
    dtype: torch.dtype,
    device: torch.device,
    gen: torch.Generator,
    num_padding_tokens: int = 0,
) -> PagedBatch:
    """Random data for ``shapes`` in shuffled, non-contiguous blocks, written with ``impl``."""
    num_reqs = len(shapes)
    blocks_needed = [-(-(c + q) // block_size) for c, q in shapes]
    num_blocks = sum(blocks_needed) + 3
    block_ids = torch.randperm(num_blocks, generator=gen)
    # unused entries point at other requests' blocks: reading past seq_len gives wrong answers
    block_table = torch.randint(0, num_blocks, (num_reqs, max(blocks_needed) + 1), generator=gen)
    used = 0
    for i, n in enumerate(blocks_needed):
        block_table[i, :n] = block_ids[used:used + n]
        used += n

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    kv_shape = backend.kv_cache_shape(num_blocks, block_size, spec.num_kv_heads, spec.head_size)
    kv_cache = rand(*kv_shape).to(device)  # stale data everywhere
    dense_kv, context, new = [], [], []  # context/new: (keys, values, slots) per request
    for i, (context_len, query_len) in enumerate(shapes):
        seq_len = context_len + query_len
        k = rand(seq_len, spec.num_kv_heads, spec.head_size)
        v = rand(seq_len, spec.num_kv_heads, spec.head_size)
        pos = torch.arange(seq_len)
        slots = block_table[i, pos // block_size] * block_size + pos % block_size
        dense_kv.append((k, v))
        context.append((k[:context_len], v[:context_len], slots[:context_len]))
        new.append((k[context_len:], v[context_len:], slots[context_len:]))

    # the context, as earlier steps would have written it (in shuffled token order)
    ctx_k, ctx_v, ctx_slots = (torch.cat(parts) for parts in zip(*context, strict=True))
    order = torch.randperm(len(ctx_k), generator=gen)
    impl.write_kv(ctx_k[order].to(device), ctx_v[order].to(device), kv_cache, ctx_slots[order].to(device))

    # this step's new tokens, then padding rows
    pad = num_padding_tokens
    new.append((rand(pad, *ctx_k.shape[1:]), rand(pad, *ctx_k.shape[1:]), torch.full((pad,), -1)))
    key, value, slot_mapping = (torch.cat(parts) for parts in zip(*new, strict=True))
    query = rand(len(key), spec.num_heads, spec.head_size)
    query_lens = torch.tensor([q for _, q in shapes])
    seq_lens = torch.tensor([c + q for c, q in shapes], dtype=torch.int32)
    query_start_loc = torch.cat([torch.zeros(1, dtype=torch.int64), query_lens.cumsum(0)]).int()
    key, value, slot_mapping = key.to(device), value.to(device), slot_mapping.to(device)
    impl.write_kv(key, value, kv_cache, slot_mapping)
    common = CommonAttentionMetadata(
        query_start_loc=query_start_loc.to(device),
        query_start_loc_cpu=query_start_loc,
        seq_lens=seq_lens.to(device),
        seq_lens_cpu=seq_lens,
        block_table=block_table.int().to(device),
        slot_mapping=slot_mapping,
        num_reqs=num_reqs,
        num_actual_tokens=int(query_lens.sum()),
        max_query_len=int(query_lens.max()),
        max_seq_len=int(seq_lens.max()),
    )
    return PagedBatch(query.to(device), key, value, kv_cache, common, dense_kv)
