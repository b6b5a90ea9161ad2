"""Qwen3: the Llama graph with per-head RMSNorm of q and k before rotary."""

from __future__ import annotations

from typing import Any

import torch

from plinth.model.build_context import BuildContext
from plinth.model.layers import RMSNorm
from plinth.model.llama import LlamaAttention, LlamaForCausalLM
from plinth.platform.attention import RotarySpec
from plinth.platform.kernels import Op


class Qwen3Attention(LlamaAttention):
    def __init__(
        self, config: Any, ctx: BuildContext, layer_index: int, qkv_bias: bool, o_bias: bool, prefix: str = ""
    ) -> None:
        super().__init__(config, ctx, layer_index, qkv_bias, o_bias, prefix)
        self.q_norm = RMSNorm(self.head_size, config.rms_norm_eps, ctx)
        self.k_norm = RMSNorm(self.head_size, config.rms_norm_eps, ctx)
        rotary = self.rotary_emb
        try:  # the platform's one-pass norm + rotary, where it has one (no reference fallback)
            self._fused = ctx.resolve(Op.QK_NORM_ROTARY, head_size=rotary.head_size, rotary_dim=rotary.rotary_dim,
                                      is_neox_style=rotary.is_neox_style)
        except LookupError:
            self._fused = None

    def rotary_spec(self) -> RotarySpec | None:
        if type(self).position_qk is not Qwen3Attention.position_qk:
            return None
        return self.describe_rotary(q_norm_weight=self.q_norm.weight, k_norm_weight=self.k_norm.weight,
                                    eps=self.q_norm.eps)

    def position_qk(
        self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fused is not None:
            rotary = self.rotary_emb
            return self._fused(positions, q, k, self.head_size, rotary.cos_sin_cache, rotary.is_neox_style,
                               self.q_norm.weight, self.k_norm.weight, self.q_norm.eps)
        q = self.q_norm(q.reshape(q.shape[0], -1, self.head_size)).reshape(q.shape)
        k = self.k_norm(k.reshape(k.shape[0], -1, self.head_size)).reshape(k.shape)
        return self.rotary_emb(positions, q, k)


class Qwen3ForCausalLM(LlamaForCausalLM):
    attention_cls = Qwen3Attention
