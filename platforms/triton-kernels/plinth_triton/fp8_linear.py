"""FP8 linears (vLLM's ``--quantization fp8``; how fp8 checkpoints run): W8A8 in ``float8_e4m3fn``.

``Fp8Linear.prepare`` quantizes a float weight ``[N, K]`` once, symmetric per output channel
(``scale = absmax / 448``). ``apply`` quantizes each activation row the same way (a Triton kernel:
one program a row, absmax then the scaled, saturated cast) and multiplies through
``torch._scaled_mm`` with both scales applied in the GEMM's epilogue (rowwise scaling: CUTLASS on
NVIDIA sm_89+; fast accumulation: the fp8 tensor cores' partial sums are not promoted to fp32 along
K), a bf16 output cast to the model's dtype, then the bias. Half the weight bytes of a 16-bit linear
and twice the tensor-core rate on Hopper. The LM head stays on the unquantized method
(``quantizes_lm_head``), as in vLLM. ``reference`` is the same math in fp32 torch ops. The default
for fp8 checkpoints that quantize activations (W8A8) on sm_89+ (``LLMEngine._quantization``), not for
16-bit checkpoints: weights and activations are rounded to 3 mantissa bits, so outputs move from the
float model's (by a few per cent of a linear's output). Verified bit for bit (the row quantization) on
Hopper only: on sm_89 Triton's fp32 -> e4m3 cast may round differently near midpoints. A single
input row (batch-1 decode) goes through the Triton GEMV on the e4m3 operands instead (``single_row_gemv``;
``PLINTH_TRITON_FP8_GEMV=0`` turns it off): on the H100, Llama-3.1-8B's batch-1 decode runs at 246 tok/s
with it against 185 through ``_scaled_mm`` (benchmarks/RESULTS.md, round 13).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from plinth.platform.linear_method import LinearMethod
from plinth_triton.gemv import gemv, plan_gemv

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
EPS = 1e-12  # the smallest absmax a scale is taken from (an all-zero row quantizes to zeros)
ALIGN = 16  # _scaled_mm needs K and N in multiples of 16


@dataclass(frozen=True)
class Fp8Weight:
    qweight: torch.Tensor  # float8_e4m3fn [N, K]: weight ~= qweight * scale[n]
    scale: torch.Tensor  # float32 [1, N] (the GEMM's column scales)


def quantize_rows_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row e4m3 in torch (the kernel's activation quantization, and the weights'):
    ``scale = max(absmax, EPS) / 448``, values saturated: ``(q e4m3 [M, K], scale float32 [M, 1])``."""
    xf = x.reshape(-1, x.shape[-1]).float()
    scale = xf.abs().amax(dim=1, keepdim=True).clamp_min(EPS) / FP8_MAX
    return (xf / scale).clamp_(-FP8_MAX, FP8_MAX).to(FP8), scale


def quantize_weight(weight: torch.Tensor) -> Fp8Weight:
    """Symmetric per-output-channel e4m3 (each row of ``[N, K]`` as ``quantize_rows_reference`` does it)."""
    q, scale = quantize_rows_reference(weight.detach())
    return Fp8Weight(q.contiguous(), scale.reshape(1, -1).contiguous())


@triton.jit
def _quantize_rows_kernel(x_ptr, q_ptr, s_ptr, K, stride_xm, LIMIT: tl.constexpr, EPS_: tl.constexpr,
                          BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    offs = tl.arange(0, BLOCK)
    amax = tl.zeros([BLOCK], tl.float32)
    for k0 in range(0, K, BLOCK):
        x = tl.load(x_row + k0 + offs, mask=k0 + offs < K, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(x))
    scale = tl.maximum(tl.max(amax, 0), EPS_) / LIMIT
    tl.store(s_ptr + row, scale)
    for k0 in range(0, K, BLOCK):
        ok = k0 + offs < K
        x = tl.load(x_row + k0 + offs, mask=ok, other=0.0).to(tl.float32)
        q = tl.clamp(tl.math.div_rn(x, scale), -LIMIT, LIMIT)
        tl.store(q_ptr + row * K + k0 + offs, q.to(q_ptr.dtype.element_ty), mask=ok)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-row e4m3 quantization of ``x [M, K]`` (inner dim contiguous): what
    ``quantize_rows_reference`` computes, bit for bit."""
    if x.dim() != 2 or x.stride(-1) != 1:
        raise ValueError(f"quantize_rows takes [M, K] rows with a contiguous inner dim, got shape {tuple(x.shape)} "
                         f"and strides {x.stride()}")
    m, k = x.shape
    q = torch.empty(m, k, dtype=FP8, device=x.device)
    s = torch.empty(m, 1, dtype=torch.float32, device=x.device)
    if m:
        block = min(2048, triton.next_power_of_2(max(k, 16)))
        _quantize_rows_kernel[(m,)](x, q, s, k, x.stride(0), LIMIT=FP8_MAX, EPS_=EPS, BLOCK=block,
                                    num_warps=4 if block <= 1024 else 8)
    return q, s


class Fp8Linear(LinearMethod):
    """Per-channel e4m3 weights, per-token e4m3 activations (dynamic); the LM head stays unquantized."""

    name = "fp8"
    quantizes_lm_head = False

    def __init__(self, single_row_gemv: bool | None = None) -> None:
        # one input row (batch-1 decode) through the Triton GEMV on the e4m3 operands instead of
        # ``_scaled_mm``, which reads the weights far below the bandwidth at one row
        env = os.environ.get("PLINTH_TRITON_FP8_GEMV", "1") != "0"
        self.single_row_gemv = env if single_row_gemv is None else single_row_gemv

    def prepare(self, weight: torch.Tensor) -> Fp8Weight:
        return quantize_weight(weight)

    @staticmethod
    def reference(x: torch.Tensor, weight: Fp8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The semantics in fp32 torch ops: quantized operands, their product, then both scales."""
        qx, sx = quantize_rows_reference(x)
        out = (qx.float() @ weight.qweight.float().T) * sx * weight.scale
        if bias is not None:
            out = out + bias.float()
        return out.to(x.dtype).reshape(*x.shape[:-1], weight.qweight.shape[0])

    def apply(self, x: torch.Tensor, weight: Fp8Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(weight, torch.Tensor):  # a layer that was never prepared: its float weight
            return F.linear(x, weight, bias)
        n, k = weight.qweight.shape
        if x.shape[-1] != k:
            raise ValueError(f"fp8 linear: the weight {tuple(weight.qweight.shape)} takes {k} input features, "
                             f"got an input of shape {tuple(x.shape)}")
        if k % ALIGN or n % ALIGN:
            return self.reference(x, weight, bias)
        x2 = x.reshape(-1, k)
        if x2.stride(-1) != 1:
            x2 = x2.contiguous()
        if x2.shape[0] == 0:
            return x.new_empty(*x.shape[:-1], n)
        qx, sx = quantize_rows(x2)
        if self.single_row_gemv and x2.shape[0] == 1:
            out = gemv(qx, weight.qweight, plan=plan_gemv(n, k), scales=(sx.reshape(1), weight.scale.reshape(-1)),
                       out_dtype=torch.bfloat16).to(x.dtype)
            return (out if bias is None else out + bias.to(x.dtype)).reshape(*x.shape[:-1], n)
        # rowwise scales need a bf16 output; a float16 / float32 model casts it back, then adds its bias
        out = torch._scaled_mm(qx, weight.qweight.T, scale_a=sx, scale_b=weight.scale, out_dtype=torch.bfloat16,
                               use_fast_accum=True).to(x.dtype)
        if bias is not None:
            out = out + bias.to(x.dtype)
        return out.reshape(*x.shape[:-1], n)
