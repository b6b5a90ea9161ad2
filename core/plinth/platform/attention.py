"""Attention backends: core-owned metadata and KV spec, platform-owned layout and kernels."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CommonAttentionMetadata:
    """Per-step batch layout, built by core's model runner, versioned with the API.

    Tokens of request ``i`` are ``query_start_loc[i]:query_start_loc[i+1]`` of the flat
    batch; their absolute positions end at ``seq_lens[i] - 1``. Device tensors feed
    kernels; the ``_cpu`` twins let backends plan without a device sync.
    """

    query_start_loc: torch.Tensor  # int32 [num_reqs + 1], device
    query_start_loc_cpu: torch.Tensor  # int32 [num_reqs + 1], host copy
    seq_lens: torch.Tensor  # int32 [num_reqs]: context + new tokens, device
    seq_lens_cpu: torch.Tensor  # int32 [num_reqs], host copy
    block_table: torch.Tensor  # int32 [num_reqs, max_blocks_per_req], device; unused entries hold valid ids (0)
    slot_mapping: torch.Tensor  # int64 [num_tokens]: cache slot of each new token, -1 = padding
    num_reqs: int  # requests in the batch
    num_actual_tokens: int  # real tokens (the flat batch may be padded beyond this)
    max_query_len: int  # longest query (1 for a pure decode batch)
    max_seq_len: int  # longest seq_len
    causal: bool = True  # decoder attention; False for encoder-only models

    @property
    def is_uniform_decode(self) -> bool:
        return self.max_query_len == 1


@dataclass(frozen=True)
class KVCacheSpec:
    """What one attention layer needs from the KV cache."""

    block_size: int  # tokens per block
    num_kv_heads: int  # KV heads on this rank
    head_size: int  # features per head
    dtype: str  # storage dtype, e.g. "bfloat16"
    sliding_window: int | None = None  # tokens, when the layer uses a window

    def bytes_per_block(self, element_size: int) -> int:
        """Bytes one block takes for keys and values together."""
        return 2 * self.block_size * self.num_kv_heads * self.head_size * element_size


@dataclass(frozen=True)
class AttentionSelector:
    """What a model asks of an attention backend; used to choose one."""

    head_size: int
    num_heads: int
    num_kv_heads: int
    dtype: str  # compute dtype of q/k/v
    kv_cache_dtype: str  # storage dtype of the cache; "auto" = the compute dtype
    block_size: int
    sliding_window: int | None = None
    logits_soft_cap: float | None = None
    causal: bool = True


@dataclass(frozen=True)
class AttentionLayerSpec:
    """Static per-layer parameters handed to :meth:`AttentionBackend.make_impl`."""

    num_heads: int
    num_kv_heads: int
    head_size: int
    scale: float
    sliding_window: int | None = None
    logits_soft_cap: float | None = None

    @classmethod
    def default(cls, num_heads: int, num_kv_heads: int, head_size: int) -> AttentionLayerSpec:
        return cls(num_heads, num_kv_heads, head_size, 1.0 / math.sqrt(head_size))


@dataclass(frozen=True)
class RotarySpec:
    """What a layer does to q and k before attention, for a backend that rotates k as it writes it (API 1.7).

    Rotary as ``plinth.ops.reference.rotary_embedding`` (``cos_sin_cache`` float32 ``[max_position,
    rotary_dim]``, cos then sin; NeoX halves or GPT-J pairs; ``rotary_dim`` may be under ``head_size``),
    after a per-head RMSNorm of q and k when the norm weights are given (Qwen3: ``qk_norm_rotary``).
    """

    head_size: int
    cos_sin_cache: torch.Tensor
    is_neox_style: bool = True
    q_norm_weight: torch.Tensor | None = None  # [head_size]; with k_norm_weight, a per-head RMSNorm first
    k_norm_weight: torch.Tensor | None = None
    eps: float = 1e-6


class GraphSupport(Enum):
    """How far a backend's forward may be captured in a device graph."""

    NEVER = 0
    UNIFORM_DECODE = 1  # pure decode batches only
    ALWAYS = 2  # any batch, including mixed prefill/decode


@dataclass(frozen=True)
class Support:
    """Whether a backend supports a selector, and why not."""

    ok: bool
    reason: str = ""


class AttentionImpl(ABC):
    """One layer's attention on one backend."""

    @abstractmethod
    def write_kv(
        self, key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor
    ) -> None:
        """Store ``key``/``value`` ``[num_tokens, num_kv_heads, head_size]`` at ``slot_mapping``
        (``block_id * block_size + offset``; negative = padding, skip)."""

    @abstractmethod
    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        metadata: Any,
        out: torch.Tensor,
    ) -> torch.Tensor:
        """Attention of every query token over its request's cached context.

        Called after :meth:`write_kv`, so ``kv_cache`` already holds the new tokens;
        ``key``/``value`` are those new tokens, for backends that prefer them. Slots
        that were never written hold arbitrary values (NaN included: caches are not
        zeroed) and must not affect the result.
        ``query``/``out``: ``[num_tokens, num_heads, head_size]``. ``metadata`` is what
        :meth:`AttentionBackend.build_metadata` returned. Writes into and returns ``out``.
        """

    def write_kv_rotary(
        self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
        kv_cache: torch.Tensor, slot_mapping: torch.Tensor, rotary: RotarySpec,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Rotate q and k as ``rotary`` says and write the rotated k and ``value`` into the cache, in one pass
        (API 1.7). ``query`` ``[T, num_heads*head_size]``, ``key``/``value`` ``[T, num_kv_heads*head_size]``
        (views of the QKV projection's output). Returns the rotated ``(query, key)``, shaped as given, and
        leaves the cache as :meth:`write_kv` of that key would; the inputs are not modified. The default
        returns None: not fused, and the layer rotates, then calls :meth:`write_kv`."""
        return None


class AttentionBackend(ABC):
    """A platform's attention implementation: cache layout, metadata and kernels."""

    name: str = "attention"
    supported_block_sizes: tuple[int, ...] = ()  # () = any multiple of 1
    graph_support: GraphSupport = GraphSupport.NEVER

    @abstractmethod
    def supports(self, selector: AttentionSelector) -> Support:
        """Whether this backend can run ``selector``; the reason when not."""

    @abstractmethod
    def kv_cache_shape(
        self, num_blocks: int, block_size: int, num_kv_heads: int, head_size: int
    ) -> tuple[int, ...]:
        """Shape of one layer's cache tensor (keys and values together)."""

    def build_metadata(self, common: CommonAttentionMetadata) -> Any:
        """Backend metadata for one step; the default hands over the common metadata."""
        return common

    @abstractmethod
    def make_impl(self, spec: AttentionLayerSpec) -> AttentionImpl:
        """The implementation of one attention layer."""
