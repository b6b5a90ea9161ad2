"""Int8 weight-only linears on the CPU: the platform half of a quantization method.

``Int8WeightOnly.quantize`` turns a float weight ``[N, K]`` into int8 with one symmetric fp32
scale per output channel; ``apply`` computes ``x @ dequantized(weight).T + bias`` with the
csrc kernel (weights stay int8 in memory, fp32 accumulation). ``dequantize`` is the
reference the kernel is tested against. A ``LinearMethod``: model layers use it when the build
context's ``quantization`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from plinth.platform.linear_method import LinearMethod
from plinth_cpu.kernels import DTYPE_CODES


@dataclass(frozen=True)
class Int8Weight:
    qweight: torch.Tensor  # int8 [N, K]
    scale: torch.Tensor  # float32 [N]: weight ~= qweight * scale[:, None]


class Int8WeightOnly(LinearMethod):
    """Per-channel symmetric int8 weights, activations in the model dtype (fp32 or bf16)."""

    name = "int8_weight_only"

    def __init__(self, module: Any) -> None:
        self.C = module

    @staticmethod
    def quantize(weight: torch.Tensor) -> Int8Weight:
        w = weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        return Int8Weight(q.contiguous(), scale.contiguous())

    def prepare(self, weight: torch.Tensor) -> Int8Weight:
        return self.quantize(weight)

    @staticmethod
    def dequantize(weight: Int8Weight) -> torch.Tensor:
        return weight.qweight.float() * weight.scale[:, None]

    def reference(self, x: torch.Tensor, weight: Int8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The semantics: an fp32 linear on the dequantized weight, cast to ``x``'s dtype."""
        b = bias.float() if bias is not None else None
        return F.linear(x.float(), self.dequantize(weight), b).to(x.dtype)

    def apply(self, x: torch.Tensor, weight: Int8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(weight, torch.Tensor):  # a layer that was never prepared: its float weight
            return F.linear(x, weight, bias)
        n, k = weight.qweight.shape
        if x.dtype not in DTYPE_CODES or x.shape[-1] != k or (bias is not None and bias.dtype != x.dtype):
            return self.reference(x, weight, bias)
        x2 = x.reshape(-1, k)
        x2 = x2 if x2.stride(-1) == 1 else x2.contiguous()
        out = torch.empty((*x.shape[:-1], n), dtype=x.dtype)
        bias_ptr = bias.contiguous().data_ptr() if bias is not None else 0
        self.C.int8_linear(out.data_ptr(), x2.data_ptr(), weight.qweight.data_ptr(), weight.scale.data_ptr(),
                           bias_ptr, x2.shape[0], n, k, x2.stride(0), DTYPE_CODES[x.dtype], torch.get_num_threads())
        return out
