"""Head-major paged KV cache and an online-softmax (flash-decoding style) attention.

Cache of one layer: ``[num_blocks, 2, num_kv_heads, block_size, head_size]`` (keys, then
values, per block). ``forward`` walks the KV blocks once, keeping a running max and sum
per query (online softmax), for every query token of the batch at once, in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from plinth.platform import (
    AttentionBackend,
    AttentionImpl,
    AttentionLayerSpec,
    AttentionSelector,
    CommonAttentionMetadata,
    GraphSupport,
    Support,
)

BLOCK_SIZES = (16, 32)
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class ExampleMetadata:
    """One step's batch seen as a ``[num_reqs, max_query_len]`` grid of query slots."""

    token_req: torch.Tensor  # int64 [num_actual_tokens]: request of each flat token
    token_row: torch.Tensor  # int64 [num_actual_tokens]: its row in the request's queries
    query_pos: torch.Tensor  # int64 [num_reqs, max_query_len]: absolute position of each slot
    seq_lens: torch.Tensor  # int64 [num_reqs]
    block_table: torch.Tensor  # int64 [num_reqs, max_blocks_per_req]
    num_actual_tokens: int  # real tokens of the flat batch
    max_seq_len: int  # longest sequence: how many KV blocks to walk


class ExampleAttentionImpl(AttentionImpl):
    def __init__(self, spec: AttentionLayerSpec) -> None:
        self.spec = spec

    def write_kv(self, key, value, kv_cache, slot_mapping):
        block_size = kv_cache.shape[3]
        n = slot_mapping.shape[0]
        valid = slot_mapping >= 0
        slots = slot_mapping[valid].long()
        blocks, offsets = slots // block_size, slots % block_size
        # [num_blocks, block_size, num_kv_heads, head_size] views into the head-major cache
        kv_cache[:, 0].transpose(1, 2)[blocks, offsets] = key[:n][valid].to(kv_cache.dtype)
        kv_cache[:, 1].transpose(1, 2)[blocks, offsets] = value[:n][valid].to(kv_cache.dtype)

    def forward(self, query, key, value, kv_cache, metadata: ExampleMetadata, out):
        md, spec = metadata, self.spec
        num_tokens = md.num_actual_tokens
        num_reqs, max_query_len = md.query_pos.shape
        group = spec.num_heads // spec.num_kv_heads
        block_size = kv_cache.shape[3]
        grid = (num_reqs, max_query_len, spec.num_kv_heads, group)
        q = query.new_zeros(*grid, spec.head_size, dtype=torch.float32)
        q[md.token_req, md.token_row] = query[:num_tokens].float().view(num_tokens, *grid[2:], -1)
        q *= spec.scale
        running_max = q.new_full(grid, float("-inf"))
        running_sum = q.new_zeros(grid)
        acc = torch.zeros_like(q)
        for j in range((md.max_seq_len + block_size - 1) // block_size):
            kv_pos = torch.arange(j * block_size, (j + 1) * block_size, device=q.device)
            allowed = (kv_pos <= md.query_pos[..., None]) & (kv_pos < md.seq_lens[:, None, None])
            if spec.sliding_window:
                allowed &= kv_pos > md.query_pos[..., None] - spec.sliding_window
            live = j * block_size < md.seq_lens
            block_ids = torch.where(live, md.block_table[:, min(j, md.block_table.shape[1] - 1)], 0)
            kv = kv_cache[block_ids].float()  # [num_reqs, 2, num_kv_heads, block_size, head_size]
            scores = torch.einsum("rqhgd,rhsd->rqhgs", q, kv[:, 0])
            if spec.logits_soft_cap:
                scores = spec.logits_soft_cap * torch.tanh(scores / spec.logits_soft_cap)
            scores = scores.masked_fill(~allowed[:, :, None, None, :], float("-inf"))
            new_max = torch.maximum(running_max, scores.amax(-1))
            safe_max = new_max.masked_fill(new_max == float("-inf"), 0.0)  # no exp(-inf - -inf)
            probs = torch.exp(scores - safe_max[..., None])
            rescale = torch.exp(running_max - safe_max)
            running_sum = running_sum * rescale + probs.sum(-1)
            acc = acc * rescale[..., None] + torch.einsum("rqhgs,rhsd->rqhgd", probs, kv[:, 1])
            running_max = new_max
        acc /= running_sum.clamp_min(torch.finfo(torch.float32).tiny)[..., None]
        out[:num_tokens] = acc[md.token_req, md.token_row].reshape(out[:num_tokens].shape).to(out.dtype)
        return out


class ExampleAttentionBackend(AttentionBackend):
    """Exact online-softmax attention over a head-major paged cache; block sizes 16 and 32."""

    name = "example-online-softmax"
    supported_block_sizes = BLOCK_SIZES
    graph_support = GraphSupport.NEVER

    def supports(self, selector: AttentionSelector) -> Support:
        if selector.num_heads % selector.num_kv_heads:
            return Support(False, "num_heads must be a multiple of num_kv_heads")
        if not selector.causal:
            return Support(False, "only causal (decoder) attention")
        if selector.dtype not in DTYPES or selector.kv_cache_dtype not in ("auto", *DTYPES):
            return Support(False, f"dtype and KV-cache dtype must be one of {DTYPES}")
        if selector.block_size not in BLOCK_SIZES:
            return Support(False, f"block size must be one of {BLOCK_SIZES}")
        return Support(True)

    def kv_cache_shape(self, num_blocks, block_size, num_kv_heads, head_size):
        return (num_blocks, 2, num_kv_heads, block_size, head_size)

    def build_metadata(self, common: CommonAttentionMetadata) -> ExampleMetadata:
        n = common.num_reqs
        starts = common.query_start_loc[: n + 1].long()
        query_lens = starts[1:] - starts[:-1]
        seq_lens = common.seq_lens[:n].long()
        token_req = torch.repeat_interleave(
            torch.arange(n, device=starts.device), query_lens, output_size=common.num_actual_tokens)
        rows = torch.arange(common.max_query_len, device=starts.device)
        return ExampleMetadata(
            token_req=token_req,
            token_row=torch.arange(common.num_actual_tokens, device=starts.device) - starts[token_req],
            query_pos=(seq_lens - query_lens)[:, None] + rows,
            seq_lens=seq_lens,
            block_table=common.block_table[:n].long(),
            num_actual_tokens=common.num_actual_tokens,
            max_seq_len=common.max_seq_len,
        )

    def make_impl(self, spec: AttentionLayerSpec) -> ExampleAttentionImpl:
        return ExampleAttentionImpl(spec)
