"""The attention layer: writes new keys/values to the cache and delegates to the backend."""

from __future__ import annotations

import torch

from plinth.model.build_context import BuildContext
from plinth.model.forward_context import get_forward_context
from plinth.model.layers.layer import Layer
from plinth.platform.attention import AttentionImpl, AttentionLayerSpec, RotarySpec


class Attention(Layer):
    """Paged attention over the current step's batch through the selected backend.

    Reads the step's metadata and this layer's cache (``kv_caches[layer_index]``) from
    the forward context. ``q``: ``[T, num_heads*head_size]``; ``k``/``v``:
    ``[T, num_kv_heads*head_size]`` (heads on this rank). Returns ``[T, num_heads*head_size]``.
    """

    def __init__(
        self, num_heads: int, num_kv_heads: int, head_size: int, scale: float, ctx: BuildContext,
        layer_index: int, sliding_window: int | None = None, logits_soft_cap: float | None = None,
    ) -> None:
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        self.num_heads, self.num_kv_heads, self.head_size = num_heads, num_kv_heads, head_size
        self.layer_index = layer_index
        self.sliding_window = sliding_window
        spec = AttentionLayerSpec(num_heads, num_kv_heads, head_size, scale, sliding_window, logits_soft_cap)
        self.impl = ctx.attention_backend.make_impl(spec)
        # whether ``rotate_and_write`` can do anything: the backend's impl overrides ``write_kv_rotary``
        self.fuses_rotary = type(self.impl).write_kv_rotary is not AttentionImpl.write_kv_rotary

    def rotate_and_write(
        self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rotary: RotarySpec
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotated ``(q, k)`` with k and v already in the cache, where the backend does both in one pass
        (``AttentionImpl.write_kv_rotary``); None where it declines. Then call ``forward(..., kv_written=True)``."""
        fctx = get_forward_context()
        return self.impl.write_kv_rotary(positions, q, k, v, fctx.kv_caches[self.layer_index],
                                         fctx.attn_metadata.slot_mapping, rotary)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_written: bool = False) -> torch.Tensor:
        """``kv_written``: ``rotate_and_write`` stored k and v already."""
        fctx = get_forward_context()
        md = fctx.attn_metadata
        kv_cache = fctx.kv_caches[self.layer_index]
        num_tokens = q.shape[0]
        q = q.view(num_tokens, self.num_heads, self.head_size)
        k = k.view(num_tokens, self.num_kv_heads, self.head_size)
        v = v.view(num_tokens, self.num_kv_heads, self.head_size)
        if not kv_written:
            self.impl.write_kv(k, v, kv_cache, md.slot_mapping)
        out = torch.empty_like(q)
        self.impl.forward(q, k, v, kv_cache, md, out)
        return out.view(num_tokens, self.num_heads * self.head_size)
