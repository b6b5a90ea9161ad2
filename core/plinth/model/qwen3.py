"""Qwen3: the Llama graph with per-head RMSNorm of q and k before rotary."""

from __future__ import annotations

from typing import Any

import torch

from plinth.model.build_context import BuildContext
from plinth.model.layers import RMSNorm
from plinth.model.llama import LlamaAttention, LlamaForCausalLM


class Qwen3Attention(LlamaAttention):
    def __init__(self, config: Any, ctx: BuildContext, layer_index: int, qkv_bias: bool, o_bias: bool) -> None:
        super().__init__(config, ctx, layer_index, qkv_bias, o_bias)
        self.q_norm = RMSNorm(self.head_size, config.rms_norm_eps, ctx)
        self.k_norm = RMSNorm(self.head_size, config.rms_norm_eps, ctx)

    def normalize_qk(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.q_norm(q.reshape(q.shape[0], -1, self.head_size)).reshape(q.shape)
        k = self.k_norm(k.reshape(k.shape[0], -1, self.head_size)).reshape(k.shape)
        return q, k


class Qwen3ForCausalLM(LlamaForCausalLM):
    attention_cls = Qwen3Attention
