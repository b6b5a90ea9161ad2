"""An attention backend built from the reference ops: the oracle, on any torch device."""

from __future__ import annotations

from plinth.ops import reference
from plinth.platform.attention import (
    AttentionBackend,
    AttentionImpl,
    AttentionLayerSpec,
    AttentionSelector,
    GraphSupport,
    Support,
)


class ReferenceAttentionImpl(AttentionImpl):
    def __init__(self, spec: AttentionLayerSpec) -> None:
        self.spec = spec

    def write_kv(self, key, value, kv_cache, slot_mapping):
        reference.write_kv(key, value, kv_cache, slot_mapping)

    def forward(self, query, key, value, kv_cache, metadata, out):
        out[: metadata.num_actual_tokens] = reference.paged_attention(
            query[: metadata.num_actual_tokens], kv_cache, metadata, self.spec.scale,
            sliding_window=self.spec.sliding_window, logits_soft_cap=self.spec.logits_soft_cap,
        )
        return out


class ReferenceAttentionBackend(AttentionBackend):
    """Standard layout ``[2, num_blocks, block_size, num_kv_heads, head_size]``; slow and exact."""

    name = "reference"
    graph_support = GraphSupport.NEVER

    def supports(self, selector: AttentionSelector) -> Support:
        if selector.num_heads % selector.num_kv_heads:
            return Support(False, "num_heads must be a multiple of num_kv_heads")
        if not selector.causal:
            return Support(False, "only causal (decoder) attention")
        return Support(True)

    def kv_cache_shape(self, num_blocks, block_size, num_kv_heads, head_size):
        return (2, num_blocks, block_size, num_kv_heads, head_size)

    def make_impl(self, spec: AttentionLayerSpec) -> AttentionImpl:
        return ReferenceAttentionImpl(spec)
