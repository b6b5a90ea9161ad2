"""Static-shape paged attention for XLA, and the Pallas ragged paged-attention kernel on TPU.

Cache of one layer: ``[num_blocks + 1, block_size, 2 * num_kv_heads, head_size]``, keys and
values interleaved on the head axis (k0, v0, k1, v1, ...): the layout of torch_xla's
``ragged_paged_attention``. The extra last block is a scratch block: padding tokens
(slot -1) write its own current value back into its last slot, so writes need no
data-dependent shapes and leave every real slot untouched.

The XLA path is torch ops only, every shape fixed by ``(num_tokens, num_reqs, block-table
width)``: each token gathers its request's KV through the block table, chunk by chunk, with
an online softmax in fp32 and masks for causality, sequence end and sliding window. It
never reads ``max_query_len``/``max_seq_len`` (host numbers that change every step).
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

DTYPES = ("bfloat16", "float32")
BLOCK_SIZES = (16, 32, 64, 128, 256)
GATHER_BYTES = 256 * 2**20  # gathered KV per chunk; bounds the unrolled loop's memory


@dataclass(frozen=True)
class XlaAttentionMetadata:
    """Per-token views of the batch, computed on the device with static shapes."""

    slot_mapping: torch.Tensor  # int64 [num_tokens], -1 = padding (the forward context reads it)
    token_blocks: torch.Tensor  # int64 [num_tokens, width]: the block table row of each token's request
    positions: torch.Tensor  # int64 [num_tokens]: absolute position of each query token
    common: CommonAttentionMetadata  # for the Pallas kernel


def _interleave(key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``[T, H, D]`` twice -> ``[T, 2H, D]`` as k0, v0, k1, v1, ..."""
    return torch.stack((key, value), dim=2).reshape(key.shape[0], 2 * key.shape[1], key.shape[2])


class XlaAttentionImpl(AttentionImpl):
    def __init__(self, spec: AttentionLayerSpec, use_pallas: bool) -> None:
        self.spec, self.use_pallas = spec, use_pallas

    def write_kv(self, key, value, kv_cache, slot_mapping):
        num_slots = kv_cache.shape[0] * kv_cache.shape[1]
        flat = kv_cache.view(num_slots, kv_cache.shape[2], kv_cache.shape[3])
        n = slot_mapping.shape[0]
        scratch = num_slots - 1
        valid = slot_mapping >= 0
        slots = torch.where(valid, slot_mapping, scratch)
        new = _interleave(key[:n], value[:n]).to(kv_cache.dtype)
        new = torch.where(valid[:, None, None], new, flat[scratch].expand_as(new))
        flat.index_copy_(0, slots, new)

    def forward(self, query, key, value, kv_cache, metadata: XlaAttentionMetadata, out):
        if self.use_pallas:
            return out.copy_(self._pallas(query, kv_cache, metadata.common))
        spec = self.spec
        num_tokens, width = metadata.token_blocks.shape
        block_size, num_kv_heads = kv_cache.shape[1], spec.num_kv_heads
        group = spec.num_heads // num_kv_heads
        q = query[:num_tokens].float().view(num_tokens, num_kv_heads, group, spec.head_size) * spec.scale
        per_block = num_tokens * block_size * 2 * num_kv_heads * spec.head_size * 4
        chunk = max(1, min(width, GATHER_BYTES // max(per_block, 1)))
        running_max = q.new_full((num_tokens, num_kv_heads, group), float("-inf"))
        running_sum = q.new_zeros((num_tokens, num_kv_heads, group))
        acc = torch.zeros_like(q)
        pos = metadata.positions[:, None]
        for start in range(0, width, chunk):
            blocks = metadata.token_blocks[:, start:start + chunk]  # [T, c]
            c = blocks.shape[1]
            kv = kv_cache[blocks].reshape(num_tokens, c * block_size, 2 * num_kv_heads, spec.head_size)
            kv_pos = start * block_size + torch.arange(c * block_size, device=q.device)
            allowed = kv_pos[None, :] <= pos  # [T, L]; positions < seq_len follow from causality
            if spec.sliding_window:
                allowed = allowed & (kv_pos[None, :] > pos - spec.sliding_window)
            kv = torch.where(allowed[:, :, None, None], kv.float(), 0.0)  # unwritten slots may hold NaN
            scores = torch.einsum("thgd,tlhd->thgl", q, kv[:, :, 0::2])
            if spec.logits_soft_cap:
                scores = spec.logits_soft_cap * torch.tanh(scores / spec.logits_soft_cap)
            scores = torch.where(allowed[:, None, None, :], scores, float("-inf"))
            new_max = torch.maximum(running_max, scores.amax(-1))
            safe_max = torch.where(new_max == float("-inf"), 0.0, new_max)
            probs = torch.exp(scores - safe_max[..., None])
            rescale = torch.exp(running_max - safe_max)
            running_sum = running_sum * rescale + probs.sum(-1)
            acc = acc * rescale[..., None] + torch.einsum("thgl,tlhd->thgd", probs, kv[:, :, 1::2])
            running_max = new_max
        result = acc / running_sum.clamp_min(torch.finfo(torch.float32).tiny)[..., None]
        return out.copy_(result.reshape(out.shape).to(out.dtype))

    def _pallas(self, query, kv_cache, md: CommonAttentionMetadata) -> torch.Tensor:
        """torch_xla's ragged paged-attention Pallas kernel (TPU only)."""
        from torch_xla.experimental.custom_kernel import ragged_paged_attention

        num_seqs = (md.seq_lens > 0).sum().to(torch.int32).reshape(1)
        return ragged_paged_attention(
            query, kv_cache, md.seq_lens.int(), md.block_table.int(), md.query_start_loc.int(), num_seqs,
            sm_scale=self.spec.scale, sliding_window=self.spec.sliding_window,
            soft_cap=self.spec.logits_soft_cap, use_kernel=True)


class XlaAttentionBackend(AttentionBackend):
    """Paged attention with static shapes for XLA; ``use_pallas`` switches to the TPU kernel."""

    supported_block_sizes = BLOCK_SIZES
    graph_support = GraphSupport.ALWAYS  # every step is compiled, mixed batches included

    def __init__(self, use_pallas: bool = False) -> None:
        self.use_pallas = use_pallas
        self.name = "pallas_ragged_paged" if use_pallas else "xla_gather"

    def supports(self, selector: AttentionSelector) -> Support:
        if selector.num_heads % selector.num_kv_heads:
            return Support(False, "num_heads must be a multiple of num_kv_heads")
        if not selector.causal:
            return Support(False, "only causal (decoder) attention")
        kv = selector.dtype if selector.kv_cache_dtype == "auto" else selector.kv_cache_dtype
        if selector.dtype not in DTYPES or kv not in DTYPES:
            return Support(False, f"dtype and KV-cache dtype must be one of {DTYPES}")
        if selector.block_size not in BLOCK_SIZES:
            return Support(False, f"block size {selector.block_size} not in {BLOCK_SIZES}")
        if self.use_pallas and selector.head_size % 128:
            return Support(False, "the Pallas kernel needs a head size that is a multiple of 128")
        return Support(True)

    def kv_cache_shape(self, num_blocks, block_size, num_kv_heads, head_size):
        return (num_blocks + 1, block_size, 2 * num_kv_heads, head_size)  # + the scratch block

    def build_metadata(self, common: CommonAttentionMetadata) -> XlaAttentionMetadata:
        num_tokens = common.slot_mapping.shape[0]
        num_reqs = common.seq_lens.shape[0]
        starts = common.query_start_loc.long()
        token = torch.arange(num_tokens, device=starts.device)
        # request of each token: how many requests end at or before it (padding tokens clamp to the last)
        token_req = (token[:, None] >= starts[None, 1:]).sum(1).clamp_max(num_reqs - 1)
        query_lens = starts[1:] - starts[:-1]
        context = common.seq_lens.long() - query_lens
        positions = context[token_req] + token - starts[token_req]
        return XlaAttentionMetadata(
            slot_mapping=common.slot_mapping,
            token_blocks=common.block_table.long()[token_req],
            positions=positions,
            common=common,
        )

    def make_impl(self, spec: AttentionLayerSpec) -> XlaAttentionImpl:
        return XlaAttentionImpl(spec, self.use_pallas)
