"""The kernel registry: named ops, platform implementations, reference fallback."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Op:
    """Names of the ops a platform may implement; signatures equal ``plinth.ops.reference``.

    Traits passed to ``supports``: always ``dtype`` (e.g. "bfloat16") and ``device_type``;
    per op, the static sizes the layer knows: ``hidden_size`` (norms, silu_and_mul),
    ``head_size``/``rotary_dim``/``is_neox_style`` (rotary). An implementation must
    treat a missing trait as unknown and decline if it needs it.

    ``WRITE_KV`` is the standard-layout KV write, for backends that use the standard
    layout and want a faster kernel; core itself always calls ``AttentionImpl.write_kv``.

    ``SAMPLE`` (optional) is ``sample(logits [B, V], temperature [B] float32, seeds [B] int64)
    -> [B] int64``: greedy rows (T == 0) take the argmax, the others an exact draw from
    ``softmax(logits / T)`` whose randomness is a fixed function of ``(seeds[i], token index)``
    (see ``plinth.ops.reference.sample``; a kernel must match it in distribution). The sampler
    resolves it once (traits ``device_type``, ``dtype`` of the logits) and calls it only for batches
    without filters, penalties, masks, processors, logprobs or seeded rows; with no platform kernel
    the sampler's own torch path runs (the reference is for tests, not a fallback).

    ``QK_NORM_ROTARY`` (optional, API 1.2) is ``qk_norm_rotary(positions, query, key, head_size,
    cos_sin_cache, is_neox_style, q_weight, k_weight, eps)``: ``rms_norm`` of every q and k head
    (weights ``[head_size]``) then ``rotary_embedding``, in one kernel (Qwen3's q/k path); traits as
    for rotary. Without a platform kernel the model calls the two ops (no reference fallback).
    """

    RMS_NORM = "rms_norm"
    FUSED_ADD_RMS_NORM = "fused_add_rms_norm"
    ROTARY_EMBEDDING = "rotary_embedding"
    SILU_AND_MUL = "silu_and_mul"
    WRITE_KV = "write_kv"
    SCALED_MM = "scaled_mm"
    FUSED_MOE = "fused_moe"
    SAMPLE = "sample"
    QK_NORM_ROTARY = "qk_norm_rotary"

    ALL = (RMS_NORM, FUSED_ADD_RMS_NORM, ROTARY_EMBEDDING, SILU_AND_MUL, WRITE_KV, SCALED_MM, FUSED_MOE, SAMPLE,
           QK_NORM_ROTARY)
    WITH_REFERENCE = (RMS_NORM, FUSED_ADD_RMS_NORM, ROTARY_EMBEDDING, SILU_AND_MUL, WRITE_KV)  # and fallback
    CHECKED_AGAINST_REFERENCE = WITH_REFERENCE + (QK_NORM_ROTARY,)  # the conformance kit compares these


@dataclass(frozen=True)
class KernelImpl:
    op: str  # an Op name
    fn: Callable[..., Any]  # same signature and semantics as the reference
    name: str  # shown in logs and `plinth platforms`
    priority: int = 0  # higher wins among implementations that support a call
    supports: Callable[[dict], bool] = field(default=lambda traits: True)  # traits -> usable?


class KernelRegistry:
    """Platform kernels by op. ``resolve`` is called once per layer, not per call.

    Traits are static facts about the calls a layer will make, e.g.
    ``{"dtype": "bfloat16", "hidden_size": 4096, "device_type": "cpu"}``.
    """

    def __init__(self) -> None:
        self._impls: dict[str, list[KernelImpl]] = {}

    def register(
        self,
        op: str,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        priority: int = 0,
        supports: Callable[[dict], bool] | None = None,
    ) -> None:
        if op not in Op.ALL:
            raise ValueError(f"unknown op {op!r}; known ops: {', '.join(Op.ALL)}")
        impl = KernelImpl(op, fn, name or getattr(fn, "__qualname__", repr(fn)), priority,
                          supports or (lambda traits: True))
        self._impls.setdefault(op, []).append(impl)
        self._impls[op].sort(key=lambda i: -i.priority)

    def implementations(self, op: str) -> list[KernelImpl]:
        return list(self._impls.get(op, []))

    def resolve(self, op: str, **traits: Any) -> Callable[..., Any]:
        """The best implementation of ``op`` for ``traits``; the reference when none fits."""
        for impl in self._impls.get(op, []):
            if impl.supports(traits):
                return impl.fn
        if op not in Op.WITH_REFERENCE:
            raise LookupError(f"no kernel for op {op!r} supports {traits} and core has no reference for it")
        return getattr(importlib.import_module("plinth.ops.reference"), op)
