"""Float linears on the CPU with weights pre-packed once for oneDNN (vLLM's CPU build does the same).

``F.linear`` hands oneDNN the weight in torch's layout, so every call re-blocks it; at decode sizes
that copy costs as much as the GEMM (bench: SmolLM2 gate_up at M=1 74 -> 39 us, LM head
1,975 -> 1,026 us; at M=32 1.2-1.4x). ``prepare`` reorders the weight into oneDNN's blocked
layout once; ``apply`` runs ``mkldnn._linear_pointwise`` on it. Same math as ``F.linear`` (oneDNN,
fp32 accumulation); anything the packed path does not take falls back to ``F.linear``.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

from plinth.platform.linear_method import UNQUANTIZED, LinearMethod

logger = logging.getLogger(__name__)
PACKED_DTYPES = (torch.float32, torch.bfloat16)


@functools.cache
def onednn_packing_available() -> bool:
    """Whether this torch build can pack linear weights for oneDNN (bf16 also needs CPU support)."""
    return bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
                and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


@functools.cache
def _linear_pointwise():
    """The op's one overload, looked up once (calling the packet resolves it per call)."""
    return torch.ops.mkldnn._linear_pointwise.default


class OneDnnPackedLinear(LinearMethod):
    """Unquantized linears on oneDNN-packed weights."""

    name = UNQUANTIZED

    def prepare(self, weight: torch.Tensor) -> torch.Tensor:
        if not (onednn_packing_available() and weight.device.type == "cpu" and weight.dim() == 2
                and weight.dtype in PACKED_DTYPES):
            return weight
        if weight.dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return weight
        try:
            return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())
        except RuntimeError as exc:  # an unusual shape or build: the plain path is always correct
            logger.warning("oneDNN weight packing failed (%s); using F.linear for this layer", exc)
            return weight

    def apply(self, x: torch.Tensor, prepared: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if prepared.is_mkldnn and x.dtype == prepared.dtype and x.numel() > 0 and (
                bias is None or bias.dtype == x.dtype):
            return _linear_pointwise()(x, prepared, bias, "none", [], "")
        return F.linear(x, prepared.to_dense() if prepared.is_mkldnn else prepared, bias)
