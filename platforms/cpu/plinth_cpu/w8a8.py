"""W8A8 linears on the CPU: int8 weights and int8 activations, int32 dot products (AVX512-VNNI).

``W8A8Int8.prepare`` quantizes a float weight ``[N, K]`` once, symmetric per output channel, and
packs it for the csrc kernel ``w8a8_linear`` (csrc/cpu/w8a8_linear_impl.h); ``apply`` quantizes
each activation row inside the kernel (symmetric, absmax / 127), adds the integer products
exactly and scales by both scales. ``reference`` is the same math in torch (int64 sums), which
the kernel matches up to the fp32 rounding of the final scale. Not the default: activations are
rounded to 8 bits, so results move from the float model's (by about 1% of a linear's output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from plinth.platform.linear_method import LinearMethod
from plinth_cpu.kernels import DTYPE_CODES
from plinth_cpu.weight_arena import WeightArena

BLOCK = 16  # output rows per block of the packed layout (kW8Block)
GROUP = 4  # K elements per 32-bit word of a vpdpbusd operand


@dataclass(frozen=True)
class W8A8Weight:
    packed: torch.Tensor  # int8 [ceil(N/16), ceil(K/4), 16, 4]: block b, group g, row j = qw[16b+j, 4g:4g+4]
    row_sum: torch.Tensor  # int32 [N]: sum_k qw[n, k] (the kernel's +128 activation offset correction)
    scale: torch.Tensor  # float32 [N]: weight ~= qw * scale[:, None]
    out_features: int  # N
    in_features: int  # K


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-channel int8: ``(qw int8 [N, K], scale float32 [N])``."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    return torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8), scale


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's activation quantization: per row ``s = absmax / 127`` (fp32) and
    ``q = round_half_even(x / s)`` in [-127, 127], 0 for an all-zero row: ``(q int8, s float32)``."""
    xf = x.float()
    s = xf.abs().amax(dim=-1) / 127.0
    q = torch.round(xf / torch.where(s > 0, s, 1.0)[..., None]).clamp_(-127, 127)
    return torch.where(s[..., None] > 0, q, 0.0).to(torch.int8), s


def pack(qw: torch.Tensor, arena: WeightArena | None = None) -> torch.Tensor:
    """``qw [N, K]`` in the kernel's layout (rows padded to 16 and K to 4 with zeros)."""
    n, k = qw.shape
    rows, groups = -(-n // BLOCK) * BLOCK, -(-k // GROUP)
    padded = torch.zeros(rows, groups * GROUP, dtype=torch.int8)
    padded[:n, :k] = qw
    shape = (rows // BLOCK, groups, BLOCK, GROUP)
    packed = torch.empty(shape, dtype=torch.int8) if arena is None else arena.empty(shape, torch.int8)
    packed.copy_(padded.view(rows // BLOCK, BLOCK, groups, GROUP).transpose(1, 2))
    return packed


def unpack(weight: W8A8Weight) -> torch.Tensor:
    """``qw [N, K]`` back from the packed layout."""
    blocks, groups = weight.packed.shape[:2]
    dense = weight.packed.transpose(1, 2).reshape(blocks * BLOCK, groups * GROUP)
    return dense[: weight.out_features, : weight.in_features]


class W8A8Int8(LinearMethod):
    """Per-channel symmetric int8 weights, per-token symmetric int8 activations (dynamic)."""

    name = "w8a8_int8"

    def __init__(self, module: Any) -> None:
        self.C = module
        self.arena = WeightArena()  # the packed weights, on huge pages where the OS grants them

    def prepare(self, weight: torch.Tensor) -> W8A8Weight:
        qw, scale = quantize_weight(weight)
        n, k = qw.shape
        return W8A8Weight(pack(qw, self.arena), qw.sum(dim=1, dtype=torch.int32).contiguous(),
                          scale.contiguous(), n, k)

    @staticmethod
    def reference(x: torch.Tensor, weight: W8A8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The semantics in torch: quantized operands, an exact integer matmul, then both scales (fp64)."""
        qx, sx = quantize_rows(x)
        acc = qx.to(torch.int64) @ unpack(weight).to(torch.int64).T  # exact: no float rounding yet
        out = acc.double() * sx.double()[..., None] * weight.scale.double()
        if bias is not None:
            out = out + bias.double()
        return out.to(x.dtype)

    def apply(self, x: torch.Tensor, weight: W8A8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(weight, torch.Tensor):  # a layer that was never prepared: its float weight
            return torch.nn.functional.linear(x, weight, bias)
        n, k = weight.out_features, weight.in_features
        if x.dtype not in DTYPE_CODES or x.shape[-1] != k or (bias is not None and bias.dtype != x.dtype):
            return self.reference(x, weight, bias)
        x2 = x.reshape(-1, k)
        x2 = x2 if x2.stride(-1) == 1 else x2.contiguous()
        out = torch.empty((*x.shape[:-1], n), dtype=x.dtype)
        if x2.shape[0]:
            bias = None if bias is None else bias.contiguous()
            self.C.w8a8_linear(out.data_ptr(), x2.data_ptr(), weight.packed.data_ptr(), weight.row_sum.data_ptr(),
                               weight.scale.data_ptr(), 0 if bias is None else bias.data_ptr(), x2.shape[0], n, k,
                               x2.stride(0), n, DTYPE_CODES[x.dtype], torch.get_num_threads())
        return out
