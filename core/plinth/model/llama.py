"""The Llama family (Llama 2/3/3.1/3.2, Mistral, SmolLM), HF-shaped; the base of Qwen2/Qwen3."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from plinth.model.build_context import BuildContext
from plinth.model.layers import (
    Attention,
    Layer,
    MergedColumnParallelLinear,
    ParallelLMHead,
    QKVParallelLinear,
    RMSNorm,
    RowParallelLinear,
    SiluAndMul,
    VocabParallelEmbedding,
    get_rope,
)
from plinth.model.weights import load_named_weights
from plinth.platform.attention import KVCacheSpec, RotarySpec

STACKED_PARAMS = (
    ("qkv_proj", "q_proj", "q"), ("qkv_proj", "k_proj", "k"), ("qkv_proj", "v_proj", "v"),
    ("gate_up_proj", "gate_proj", 0), ("gate_up_proj", "up_proj", 1),
)


def head_size(config: Any) -> int:
    """Features per attention head: ``config.head_dim`` when set, else hidden / heads."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def sliding_window(config: Any, layer_index: int) -> int | None:
    """The layer's attention window: per ``layer_types`` when the config has them, else
    ``config.sliding_window`` (Mistral) unless ``use_sliding_window`` is off."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return window if layer_types[layer_index] == "sliding_attention" else None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    return window


class LlamaMLP(Layer):
    def __init__(
        self, hidden_size: int, intermediate_size: int, ctx: BuildContext, bias: bool = False, prefix: str = ""
    ) -> None:
        super().__init__()
        self.gate_up_proj = MergedColumnParallelLinear(hidden_size, [intermediate_size] * 2, ctx, bias,
                                                       prefix=f"{prefix}.gate_up_proj", gated=True)
        self.down_proj = RowParallelLinear(intermediate_size, hidden_size, ctx, bias, prefix=f"{prefix}.down_proj")
        self.act_fn = SiluAndMul(ctx, intermediate_size // ctx.tp_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.activate(x))

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """``silu(gate(x)) * up(x)``: the down projection's input."""
        return self.gate_up_proj.silu_and_mul(x, self.act_fn)


class LlamaAttention(Layer):
    """Self-attention: fused QKV projection, rotary, paged attention, output projection.

    ``prefix``: the module name (``model.layers.0.self_attn``) its linear layers' names extend."""

    def __init__(
        self, config: Any, ctx: BuildContext, layer_index: int, qkv_bias: bool, o_bias: bool, prefix: str = ""
    ) -> None:
        super().__init__()
        self.head_size = head_size(config)
        num_kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.qkv_proj = QKVParallelLinear(
            config.hidden_size, self.head_size, config.num_attention_heads, num_kv_heads, ctx, qkv_bias,
            prefix=f"{prefix}.qkv_proj",
        )
        self.o_proj = RowParallelLinear(config.num_attention_heads * self.head_size, config.hidden_size, ctx, o_bias,
                                        prefix=f"{prefix}.o_proj")
        self.rotary_emb = get_rope(config, self.head_size, ctx)
        self.attn = Attention(
            self.qkv_proj.num_heads, self.qkv_proj.num_kv_heads, self.head_size, self.head_size ** -0.5,
            ctx, layer_index, sliding_window(config, layer_index),
        )

    def position_qk(
        self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hook for what happens to q and k before attention: rotary here (Qwen3 norms them first)."""
        return self.rotary_emb(positions, q, k)

    def rotary_spec(self) -> RotarySpec | None:
        """``position_qk`` described for a backend that rotates k as it writes the cache; None where a subclass
        changed ``position_qk`` without describing it here too."""
        if type(self).position_qk is not LlamaAttention.position_qk:
            return None
        return self.describe_rotary()

    def describe_rotary(self, **qk_norm) -> RotarySpec:
        """``rotary_emb`` as a ``RotarySpec``; ``qk_norm``: the norm weights and eps applied before it."""
        rotary = self.rotary_emb
        return RotarySpec(rotary.head_size, rotary.cos_sin_cache, rotary.is_neox_style, **qk_norm)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return self.o_proj(self.attend(positions, hidden))

    def attend(self, positions: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Attention up to the output projection (its input)."""
        q, k, v = self.qkv_proj.split(self.qkv_proj(hidden))
        spec = self.rotary_spec() if self.attn.fuses_rotary else None
        rotated = None if spec is None else self.attn.rotate_and_write(positions, q, k, v, spec)
        if rotated is not None:
            return self.attn(*rotated, v, kv_written=True)
        q, k = self.position_qk(positions, q, k)
        return self.attn(q, k, v)


class LlamaDecoderLayer(Layer):
    def __init__(self, config: Any, ctx: BuildContext, self_attn: nn.Module, mlp_bias: bool, prefix: str = "") -> None:
        super().__init__()
        self.self_attn = self_attn
        self.mlp = LlamaMLP(config.hidden_size, config.intermediate_size, ctx, mlp_bias, prefix=f"{prefix}.mlp")
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, ctx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, ctx)

    def forward(
        self, positions: torch.Tensor, hidden: torch.Tensor | None, residual: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(output, residual)``; an output of None means it was already added into ``residual`` (the output and
        MLP-down projections add the residual inside their GEMM where the linear method does)."""
        hidden, residual = add_norm(self.input_layernorm, hidden, residual)
        attended = self.self_attn.attend(positions, hidden)
        summed = self.self_attn.o_proj.add_to(attended, residual)
        if summed is None:
            hidden, residual = self.post_attention_layernorm(self.self_attn.o_proj(attended), residual)
        else:
            hidden, residual = self.post_attention_layernorm(summed), summed
        activated = self.mlp.activate(hidden)
        summed = self.mlp.down_proj.add_to(activated, residual)
        return (self.mlp.down_proj(activated), residual) if summed is None else (None, summed)


def add_norm(norm: nn.Module, hidden: torch.Tensor | None, residual: torch.Tensor | None):
    """``(norm(hidden + residual), hidden + residual)`` with either side absent: no residual yet (the first
    layer), or ``hidden`` None (already added into ``residual``)."""
    if residual is None:
        return norm(hidden), hidden
    if hidden is None:
        return norm(residual), residual
    return norm(hidden, residual)


class LlamaModel(Layer):
    """Embedding, decoder layers and final norm (HF's ``model.`` prefix)."""

    def __init__(self, config: Any, ctx: BuildContext, layers: list[nn.Module]) -> None:
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size, ctx)
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, ctx)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embed_tokens(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual)
        hidden, _ = add_norm(self.norm, hidden, residual)
        return hidden


class LlamaForCausalLM(Layer):
    """A decoder-only causal LM over a flat batch of tokens (no batch dimension).

    Subclasses change :meth:`make_attention` and the bias flags, not the graph.
    """

    attention_cls: type[LlamaAttention] = LlamaAttention

    def __init__(self, hf_config: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.config, self.ctx = hf_config, ctx
        mlp_bias = bool(getattr(hf_config, "mlp_bias", False))
        layers = [
            LlamaDecoderLayer(hf_config, ctx, self.make_attention(hf_config, ctx, i), mlp_bias, f"model.layers.{i}")
            for i in range(hf_config.num_hidden_layers)
        ]
        self.model = LlamaModel(hf_config, ctx, layers)
        self.tie_word_embeddings = bool(getattr(hf_config, "tie_word_embeddings", False))
        self.lm_head = ParallelLMHead(hf_config.vocab_size, hf_config.hidden_size, ctx, prefix="lm_head")
        if self.tie_word_embeddings:
            self.lm_head.tie_to(self.model.embed_tokens)

    def attention_biases(self, config: Any) -> tuple[bool, bool]:
        """``(qkv_bias, o_bias)``; Llama uses ``attention_bias`` for both."""
        bias = bool(getattr(config, "attention_bias", False))
        return bias, bias

    def make_attention(self, config: Any, ctx: BuildContext, layer_index: int) -> nn.Module:
        qkv_bias, o_bias = self.attention_biases(config)
        return self.attention_cls(config, ctx, layer_index, qkv_bias, o_bias, f"model.layers.{layer_index}.self_attn")

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``input_ids``/``positions`` ``[T]`` -> final hidden states ``[T, hidden_size]``.

        Must run inside :func:`plinth.model.forward_context.forward_context`.
        """
        return self.model(input_ids, positions)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[R, H]`` of the rows that sample -> logits ``[R, vocab_size]`` (model dtype)."""
        return self.lm_head.compute_logits(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Load HF-named tensors (q/k/v and gate/up merged); returns the parameters loaded."""
        skip = ["rotary_emb.inv_freq"] + (["lm_head.weight"] if self.tie_word_embeddings else [])
        return load_named_weights(self, weights, STACKED_PARAMS, skip)

    def kv_cache_spec(self) -> list[KVCacheSpec]:
        """One spec per attention layer, indexed like ``ForwardContext.kv_caches``."""
        specs = []
        for layer in self.model.layers:
            attn = layer.self_attn.attn
            specs.append(KVCacheSpec(self.ctx.block_size, attn.num_kv_heads, attn.head_size,
                                     self.ctx.cache_dtype_name, attn.sliding_window))
        return specs


class MistralForCausalLM(LlamaForCausalLM):
    """Mistral: the Llama graph with a sliding attention window from ``config.sliding_window``."""
