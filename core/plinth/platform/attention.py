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
