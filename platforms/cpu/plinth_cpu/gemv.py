"""bf16 linears on the csrc kernel ``gemv_bf16`` over weights packed once in pair-blocked form.

The kernel (csrc/cpu/gemv_bf16_impl.h) streams each weight byte once per call: M=1 decode reads the
weights at close to this machine's bandwidth (SmolLM2's 270 MB of linears: 45 vs 33 GB/s through
oneDNN-packed weights), and its register-blocked small GEMM matches oneDNN up to prefill sizes
(benchmarks/RESULTS.md, CPU round 4), so one packed copy serves every batch size. Used where the
kernel has native bf16 dot products (AVX512-BF16); fp32 weights stay with oneDNN packing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from plinth.platform.linear_method import UNQUANTIZED, LinearMethod
from plinth_cpu.weight_arena import WeightArena

BLOCK = 16  # output rows per block of the packed layout (kGemvBlock)


@dataclass(frozen=True)
class PairBlockedWeight:
    packed: torch.Tensor  # bf16 [ceil(N/16), ceil(K/2), 16, 2]: block b, pair p, row j = w[16b+j, 2p:2p+2]
    out_features: int  # N
    in_features: int  # K


def pack_pairs(weight: torch.Tensor, arena: WeightArena | None = None) -> PairBlockedWeight:
    """``weight [N, K]`` in the kernel's layout (rows padded to 16, K to even, with zeros), in
    memory from ``arena`` when given."""
    n, k = weight.shape
    rows, pairs = -(-n // BLOCK) * BLOCK, -(-k // 2)
    padded = weight
    if (rows, 2 * pairs) != (n, k):
        padded = torch.zeros(rows, 2 * pairs, dtype=weight.dtype)
        padded[:n, :k] = weight
    shape = (rows // BLOCK, pairs, BLOCK, 2)
    packed = torch.empty(shape, dtype=weight.dtype) if arena is None else arena.empty(shape, weight.dtype)
    packed.copy_(padded.view(rows // BLOCK, BLOCK, pairs, 2).transpose(1, 2))
    return PairBlockedWeight(packed, n, k)


def unpack_pairs(weight: PairBlockedWeight) -> torch.Tensor:
    """The plain ``[N, K]`` weight back (the reference path's operand)."""
    blocks, pairs = weight.packed.shape[:2]
    dense = weight.packed.transpose(1, 2).reshape(blocks * BLOCK, 2 * pairs)
    return dense[: weight.out_features, : weight.in_features]


def flat_rows(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [..., K]`` as rows ``[M, K]`` with unit stride along K, and an empty output ``[..., n]`` in
    ``x``'s dtype: the operands of the csrc linear kernels. A 2-D ``x`` (the model's flat token batch;
    a decode step makes ~120 of these calls) is not reshaped."""
    if x.dim() == 2:
        return (x if x.stride(1) == 1 else x.contiguous()), torch.empty(x.shape[0], n, dtype=x.dtype)
    rows = x.reshape(-1, x.shape[-1])
    return (rows if rows.stride(-1) == 1 else rows.contiguous()), torch.empty((*x.shape[:-1], n), dtype=x.dtype)


def run_rows(x: torch.Tensor, n: int, bias: torch.Tensor | None, launch) -> torch.Tensor:
    """``x @ W.T (+ bias)`` through a csrc linear kernel: ``launch(out_ptr, x_ptr, bias_ptr, M, x_row_stride)``
    runs it on ``flat_rows(x, n)``; no launch for zero rows."""
    x2, out = flat_rows(x, n)
    if x2.shape[0]:
        bias = None if bias is None else bias.contiguous()
        launch(out.data_ptr(), x2.data_ptr(), 0 if bias is None else bias.data_ptr(), x2.shape[0], x2.stride(0))
    return out


def native_bf16(module: Any) -> bool:
    """Whether ``module``'s active ISA path runs ``gemv_bf16`` on native bf16 dot products
    (elsewhere its fp32 loops lose to oneDNN beyond M=1, so oneDNN packing stays)."""
    return module is not None and module.isa() == "avx512" and "avx512_bf16" in module.cpu_features()


class GemvBf16Linear(LinearMethod):
    """Unquantized linears: bf16 weights pair-blocked for ``gemv_bf16``, others to ``fallback``."""

    name = UNQUANTIZED

    def __init__(self, module: Any, fallback: LinearMethod) -> None:
        self.C = module
        self.fallback = fallback
        self.arena = WeightArena()  # the packed weights, on huge pages where the OS grants them

    def prepare(self, weight: torch.Tensor) -> Any:
        if weight.dtype != torch.bfloat16 or weight.dim() != 2 or weight.device.type != "cpu":
            return self.fallback.prepare(weight)
        return pack_pairs(weight.detach(), self.arena)

    def apply(self, x: torch.Tensor, prepared: Any, bias: torch.Tensor | None = None) -> torch.Tensor:
        if type(prepared) is not PairBlockedWeight:
            return self.fallback.apply(x, prepared, bias)
        n, k = prepared.out_features, prepared.in_features
        if x.dtype != torch.bfloat16 or x.shape[-1] != k or (bias is not None and bias.dtype != torch.bfloat16):
            return F.linear(x, unpack_pairs(prepared).to(x.dtype), bias)
        w = prepared.packed.data_ptr()
        return run_rows(x, n, bias, lambda out, x2, b, m, stride: self.C.gemv_bf16(
            out, x2, w, b, m, n, k, stride, n, torch.get_num_threads()))
