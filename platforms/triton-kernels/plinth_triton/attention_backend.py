"""The Triton attention backend: standard KV layout, any block size, graph-capturable decode."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from plinth.platform import (
    AttentionBackend,
    AttentionImpl,
    AttentionLayerSpec,
    AttentionSelector,
    CommonAttentionMetadata,
    GraphSupport,
    RotarySpec,
    Support,
)
from plinth_triton.attention_kernel import paged_attention
from plinth_triton.attention_plan import decode_rows_first, decode_splits
from plinth_triton.kv_write import write_kv
from plinth_triton.rotary import rotary_write_kv

_DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class TritonAttentionMetadata:
    """The common metadata plus the split-KV plan, decided once per step on the host."""

    common: CommonAttentionMetadata  # the step's batch layout
    slot_mapping: torch.Tensor  # = common.slot_mapping (the forward context reads it here)
    num_splits: int  # KV splits per decode query (1 = no split)
    order: torch.Tensor | None = None  # decode: requests by context length, longest first
    decode_rows: int = 0  # a mixed step: its one-query requests, which ``order`` lists first


def _switch(value: bool | None, env: str) -> bool:
    """``value``, or when None the environment variable ``env`` (on unless it is ``0``)."""
    return os.environ.get(env, "1") != "0" if value is None else value


class TritonAttentionImpl(AttentionImpl):
    def __init__(self, spec: AttentionLayerSpec, dense_prefill: bool = True, rotary_write: bool = True) -> None:
        self.spec = spec
        self.dense_prefill = dense_prefill
        self.rotary_write = rotary_write

    def write_kv(self, key, value, kv_cache, slot_mapping):
        write_kv(key, value, kv_cache, slot_mapping)

    def write_kv_rotary(self, positions, query, key, value, kv_cache, slot_mapping, rotary: RotarySpec):
        if not self.rotary_write or rotary.head_size != self.spec.head_size:
            return None
        return rotary_write_kv(positions, query, key, value, kv_cache, slot_mapping, rotary.head_size,
                               rotary.cos_sin_cache, rotary.is_neox_style, rotary.q_norm_weight,
                               rotary.k_norm_weight, rotary.eps)

    def forward(self, query, key, value, kv_cache, metadata, out):
        md = metadata.common if isinstance(metadata, TritonAttentionMetadata) else metadata
        splits = metadata.num_splits if isinstance(metadata, TritonAttentionMetadata) else 1
        order = metadata.order if isinstance(metadata, TritonAttentionMetadata) else None
        decode_rows = metadata.decode_rows if isinstance(metadata, TritonAttentionMetadata) else 0
        return paged_attention(
            query, kv_cache, out, query_start_loc=md.query_start_loc, seq_lens=md.seq_lens,
            block_table=md.block_table, num_reqs=md.num_reqs, max_query_len=md.max_query_len,
            scale=self.spec.scale, sliding_window=self.spec.sliding_window,
            logits_soft_cap=self.spec.logits_soft_cap, num_splits=splits, order=order, decode_rows=decode_rows,
            fresh_kv=(key, value) if self.dense_prefill and key is not None else None,
        )


FP8_KV_DTYPES = ("fp8_e4m3", "fp8_e5m2")


class TritonAttentionBackend(AttentionBackend):
    """Unified varlen paged attention (prefill, decode, mixed; GQA packed; split-KV decode).

    ``num_sms``: multiprocessors of the device; with the head shape of the layers it built
    (``make_impl``), it decides when decode splits the KV (``decode_splits``).
    ``decode_order``: wide decode batches start their programs longest request first (one device
    sort per step, inside the captured graph); ``PLINTH_TRITON_DECODE_ORDER=0`` turns it off.
    ``dense_prefill``: prompts without cached context attend over the step's own keys and values with
    the dense kernel (``prefill_attention.py``); ``PLINTH_TRITON_DENSE_PREFILL=0`` turns it off.
    ``mixed_decode``: in a step with prompts, the one-query requests take their own launch with the
    decode plan instead of prefill-sized tiles; ``PLINTH_TRITON_MIXED_DECODE=0`` turns it off.
    ``rotary_write``: layers whose rotary a ``RotarySpec`` describes rotate q and k and write the rotated keys and
    the values into the cache in one launch (``rotary_write_kv``) instead of two; ``PLINTH_TRITON_ROTARY_WRITE=0``
    turns it off.
    ``fp8_kv``: the device converts fp8 in registers (NVIDIA sm_89+), so the cache may store keys and
    values as ``fp8_e4m3`` / ``fp8_e5m2`` (scale 1.0, saturated): half the bytes of a 16-bit cache, so
    twice the tokens in the same memory and half the KV a decode step reads. Prompts without cached
    context still attend over their own 16-bit keys and values where the dense prefill kernel serves them.
    """

    name = "triton_unified"
    supported_block_sizes = (16, 32, 64, 128, 256)
    graph_support = GraphSupport.UNIFORM_DECODE

    def __init__(self, num_sms: int = 132, decode_order: bool | None = None, dense_prefill: bool | None = None,
                 mixed_decode: bool | None = None, fp8_kv: bool = False, rotary_write: bool | None = None) -> None:
        self.num_sms = num_sms
        self.rotary_write = _switch(rotary_write, "PLINTH_TRITON_ROTARY_WRITE")
        self.fp8_kv = fp8_kv
        self.decode_order = _switch(decode_order, "PLINTH_TRITON_DECODE_ORDER")
        self.dense_prefill = _switch(dense_prefill, "PLINTH_TRITON_DENSE_PREFILL")
        self.mixed_decode = _switch(mixed_decode, "PLINTH_TRITON_MIXED_DECODE")
        self._kv_heads, self._group = 8, 4  # until a layer is built: Llama-8B's heads

    def supports(self, selector: AttentionSelector) -> Support:
        if selector.num_heads % selector.num_kv_heads:
            return Support(False, "num_heads must be a multiple of num_kv_heads")
        if not selector.causal:
            return Support(False, "only causal (decoder) attention")
        if selector.dtype not in _DTYPES:
            return Support(False, f"dtype {selector.dtype} not in {_DTYPES}")
        kv = selector.dtype if selector.kv_cache_dtype == "auto" else selector.kv_cache_dtype
        if kv != selector.dtype and not (self.fp8_kv and kv in FP8_KV_DTYPES):
            offered = "the compute dtype" + (f" or one of {FP8_KV_DTYPES}" if self.fp8_kv else "")
            return Support(False, f"KV cache dtype {kv} is not offered here: use {offered}")
        if selector.head_size < 16 or selector.head_size > 256:
            return Support(False, f"head size {selector.head_size} outside [16, 256]")
        if selector.block_size not in self.supported_block_sizes:
            return Support(False, f"block size {selector.block_size} not in {self.supported_block_sizes}")
        return Support(True)

    def kv_cache_shape(self, num_blocks, block_size, num_kv_heads, head_size):
        return (2, num_blocks, block_size, num_kv_heads, head_size)

    def build_metadata(self, common: CommonAttentionMetadata) -> TritonAttentionMetadata:
        splits = 1
        if common.max_query_len == 1:
            splits = decode_splits(common.num_reqs, self._kv_heads, self._group, self.num_sms)
        order = None
        decode_rows = 0
        if self.decode_order and common.max_query_len == 1 and common.num_reqs > 1:
            order = torch.argsort(common.seq_lens, descending=True)
        elif self.mixed_decode and common.max_query_len > 1:
            qsl = common.query_start_loc_cpu[: common.num_reqs + 1]
            decode_rows = int(((qsl[1:] - qsl[:-1]) == 1).sum())
            if decode_rows:
                order = decode_rows_first(common.query_start_loc, common.seq_lens, common.num_reqs)
        return TritonAttentionMetadata(common, common.slot_mapping, splits, order, decode_rows)

    def make_impl(self, spec: AttentionLayerSpec) -> AttentionImpl:
        self._kv_heads, self._group = spec.num_kv_heads, spec.num_heads // spec.num_kv_heads
        return TritonAttentionImpl(spec, self.dense_prefill, self.rotary_write)
