"""Linears on GGUF weights kept in their GGML blocks (Q8_0, Q4_0, Q4_1): the csrc ``ggml_linear``.

A GGUF checkpoint stores SmolLM2's linears as Q4_1 (5 bits a weight). Dequantized to bf16 they are
3.2x the bytes, and batch-1 decode reads every weight byte once per token. ``GGMLLinear`` is the
platform's unquantized method where it is the default: weights of the types in ``ggml_types``
reach ``prepare`` as :class:`~plinth.model.ggml_tensor.GGMLTensor` and are repacked, still
quantized, for the kernel (csrc/cpu/ggml_linear_impl.h: 16-row blocks, fp16 scales kept; the same
bytes as the file up to padding to 16 rows); float weights go to ``fallback`` (the gemv_bf16 or
oneDNN method) as before. It takes Q4_0 and Q4_1 (``DEFAULT_TYPES``): Q8_0 runs on the kernel
too but did not measure faster than ``gemv_bf16`` (par from DRAM at M <= 4, slower in cache and at
M = 8-32), so it is dequantized unless ``PLINTH_CPU_GGML=all``; ``PLINTH_CPU_GGML=0`` takes none
(GGUF weights are then dequantized by the loader as before), for A/B runs.

Only the blocks are kept (no bf16 copy for large batches): on the 2-core EPYC the kernel is 2x
``gemv_bf16`` per linear at M=1 (weights from DRAM), 1.1-1.4x slower at M=16-32 with weights in
cache, on par at M=256-2048; SmolLM2 end to end: single stream +26 %, C1 unchanged, 200 MB less
resident (benchmarks/RESULTS.md, CPU round 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from plinth.model.ggml_tensor import GGMLTensor
from plinth.platform.linear_method import UNQUANTIZED, LinearMethod
from plinth_cpu.gemv import run_rows
from plinth_cpu.kernels import DTYPE_CODES
from plinth_cpu.weight_arena import WeightArena

ENV = "PLINTH_CPU_GGML"
TYPE_CODES = {"Q8_0": 0, "Q4_0": 1, "Q4_1": 2}  # csrc GgmlType
BLOCK = 16  # output rows per packed block (kGgBlock)
VALUES = 32  # k per GGML block
QUANT_BYTES = {"Q8_0": 512, "Q4_0": 256, "Q4_1": 256}  # a packed group's values (16 rows x 32 k)
SCALES = {"Q8_0": 1, "Q4_0": 1, "Q4_1": 2}  # fp16 [16] arrays after them: d (and m)


@dataclass(frozen=True)
class GGMLPackedWeight:
    packed: torch.Tensor  # uint8 [ceil(N/16), K/32, group bytes]: see ggml_linear_impl.h
    type_name: str  # "Q8_0", "Q4_0" or "Q4_1"
    out_features: int  # N
    in_features: int  # K


def _fields(weight: GGMLTensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(codes uint8/int8 [N, K/32, 32] in k order, fp16 scale arrays [N, K/32])`` of the GGML blocks."""
    n, k = weight.shape
    raw = weight.data.contiguous().view(n, k // VALUES, -1)
    nscales = SCALES[weight.type_name]
    scales = [raw[..., 2 * i:2 * i + 2].contiguous().view(torch.float16)[..., 0] for i in range(nscales)]
    qs = raw[..., 2 * nscales:]
    if weight.type_name == "Q8_0":
        return qs.contiguous().view(torch.int8), scales
    return torch.cat([qs & 15, qs >> 4], dim=-1), scales  # element e < 16: low nibble of byte e; e + 16: high


def pack(weight: GGMLTensor, arena: WeightArena | None = None) -> GGMLPackedWeight:
    """``weight`` in the kernel's layout, in memory from ``arena`` when given."""
    if weight.type_name not in TYPE_CODES:
        raise ValueError(f"GGML type {weight.type_name} is not one ggml_linear computes on ({sorted(TYPE_CODES)})")
    n, k = weight.shape
    groups, rows = k // VALUES, -(-n // BLOCK) * BLOCK
    codes, scales = _fields(weight)
    if rows != n:  # zero rows: d = m = 0
        codes = torch.cat([codes, codes.new_zeros(rows - n, groups, VALUES)])
        scales = [torch.cat([s, s.new_zeros(rows - n, groups)]) for s in scales]
    blocks = rows // BLOCK
    codes = codes.view(blocks, BLOCK, groups, VALUES)
    if weight.type_name == "Q8_0":  # [block][group][k][row]
        values = codes.permute(0, 2, 3, 1).reshape(blocks, groups, -1).view(torch.uint8)
    else:  # word (g, j): bits 4i = k 8g+2i, bits 16+4i = k 8g+2i+1
        nib = codes.to(torch.int32).view(blocks, BLOCK, groups, 4, 4, 2)
        shifts = (4 * torch.arange(4, dtype=torch.int32)).view(4, 1) + torch.tensor([0, 16], dtype=torch.int32)
        words = (nib << shifts).sum(dim=(-2, -1), dtype=torch.int32)  # disjoint bits: sum == or
        values = words.permute(0, 2, 3, 1).contiguous().view(torch.uint8).reshape(blocks, groups, -1)
    parts = [values] + [s.view(blocks, BLOCK, groups).transpose(1, 2).contiguous().view(torch.uint8)
                        for s in scales]
    width = sum(p.shape[-1] for p in parts)
    shape = (blocks, groups, width)
    packed = torch.empty(shape, dtype=torch.uint8) if arena is None else arena.empty(shape, torch.uint8)
    torch.cat(parts, dim=-1, out=packed)
    return GGMLPackedWeight(packed, weight.type_name, n, k)


def dequantize_packed(weight: GGMLPackedWeight) -> torch.Tensor:
    """The float32 ``[N, K]`` weight back from the packed layout (gguf's values, exactly)."""
    blocks, groups, _ = weight.packed.shape
    qbytes, name = QUANT_BYTES[weight.type_name], weight.type_name
    values = weight.packed[..., :qbytes]
    if name == "Q8_0":
        codes = values.contiguous().view(torch.int8).view(blocks, groups, VALUES, BLOCK).permute(0, 3, 1, 2)
    else:
        words = values.contiguous().view(torch.int32).view(blocks, groups, 4, BLOCK)
        shifts = (4 * torch.arange(4, dtype=torch.int32)).view(4, 1) + torch.tensor([0, 16], dtype=torch.int32)
        nib = (words[..., None, None] >> shifts) & 15  # [blocks, groups, 4, 16, 4, 2]
        codes = nib.permute(0, 3, 1, 2, 4, 5).reshape(blocks, BLOCK, groups, VALUES)
    scales = [weight.packed[..., qbytes + 32 * i:qbytes + 32 * (i + 1)].contiguous().view(torch.float16)
              .float().transpose(1, 2)[..., None] for i in range(SCALES[name])]  # [blocks, 16, groups, 1]
    codes = codes.float() - (8.0 if name == "Q4_0" else 0.0)
    dense = scales[0] * codes + (scales[1] if name == "Q4_1" else 0.0)
    return dense.reshape(blocks * BLOCK, groups * VALUES)[: weight.out_features]


DEFAULT_TYPES = frozenset({"Q4_0", "Q4_1"})  # measured faster than gemv_bf16 (benchmarks/RESULTS.md)


def types_from_env() -> frozenset[str]:
    """The GGML types kept as blocks: ``PLINTH_CPU_GGML`` = 0 (none), all (Q8_0 too), else the default."""
    choice = os.environ.get(ENV, "").strip().lower()
    return frozenset() if choice == "0" else frozenset(TYPE_CODES) if choice == "all" else DEFAULT_TYPES


class GGMLLinear(LinearMethod):
    """Unquantized linears: GGML block weights computed on as they are, float weights to ``fallback``."""

    name = UNQUANTIZED

    def __init__(self, module: Any, fallback: LinearMethod, types: frozenset[str] | None = None) -> None:
        self.C = module
        self.fallback = fallback
        self.arena = WeightArena()  # the packed weights, on huge pages where the OS grants them
        self.ggml_types = types_from_env() if types is None else frozenset(types)  # None: from PLINTH_CPU_GGML

    def takes_ggml(self, type_name: str, dtype: Any) -> bool:
        """Blocks for bf16 models only: with fp32 activations the blocks run on portable loops, several
        times slower than oneDNN's fp32 GEMM on the dequantized weight (RESULTS.md, CPU round 7)."""
        return type_name in self.ggml_types and dtype == torch.bfloat16

    def prepare(self, weight: Any) -> Any:
        if isinstance(weight, GGMLTensor):
            if weight.type_name not in self.ggml_types:
                raise TypeError(f"this linear method does not take GGML {weight.type_name} weights "
                                f"(takes {sorted(self.ggml_types)}); dequantize them first")
            return pack(weight, self.arena)
        return self.fallback.prepare(weight)

    def apply(self, x: torch.Tensor, prepared: Any, bias: torch.Tensor | None = None) -> torch.Tensor:
        if type(prepared) is not GGMLPackedWeight:
            return self.fallback.apply(x, prepared, bias)
        n, k = prepared.out_features, prepared.in_features
        code = DTYPE_CODES.get(x.dtype)
        if code is None or x.shape[-1] != k or (bias is not None and bias.dtype != x.dtype):
            return F.linear(x, dequantize_packed(prepared).to(x.dtype), bias)
        w, kind = prepared.packed.data_ptr(), TYPE_CODES[prepared.type_name]
        return run_rows(x, n, bias, lambda out, x2, b, m, stride: self.C.ggml_linear(
            out, x2, w, b, m, n, k, stride, n, kind, code, torch.get_num_threads()))
