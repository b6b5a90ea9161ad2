"""Batch-1 linears (GEMV) in Triton, and the linear method that uses them for single-row inputs.

At one token per step (latency decode, L1) every linear is a matrix-vector product that streams
its weight once; cuBLAS reads Llama-8B's weights at M = 1 at ~2.66 TB/s on the H100. Here each
program owns ``BLOCK_N`` output rows, streams their ``K`` weights in ``BLOCK_K`` chunks with fp32
products accumulated elementwise, and reduces once at the end (one pass, no split-K buffer).
Larger inputs go to ``F.linear`` (cuBLAS), unchanged.

Merged gate/up weights (``prepare_gated``) may be kept with their rows interleaved, for the GEMM with
SiLU-and-mul in its epilogue (``plinth_triton.gated_linear``) at prefill-sized inputs; smaller inputs
then run the usual path and the pairwise SiLU-and-mul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from plinth.platform.linear_method import UNQUANTIZED, LinearMethod


@triton.jit
def _gemv_kernel(x_ptr, w_ptr, b_ptr, y_ptr, sx_ptr, sw_ptr, N, K, stride_wn,
                 HAS_BIAS: tl.constexpr, SCALED: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 EVEN_K: tl.constexpr):
    pid = tl.program_id(0)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    rows = w_ptr + tl.where(n_ok, offs_n, 0).to(tl.int64)[:, None] * stride_wn
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + offs_k
        if EVEN_K:
            w = tl.load(rows + k[None, :], eviction_policy="evict_first")
            x = tl.load(x_ptr + k)
        else:
            w = tl.load(rows + k[None, :], mask=(k < K)[None, :], other=0.0, eviction_policy="evict_first")
            x = tl.load(x_ptr + k, mask=k < K, other=0.0)
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
    y = tl.sum(acc, 1)
    if SCALED:  # quantized operands: the input's scale and each output row's
        y = y * tl.load(sx_ptr) * tl.load(sw_ptr + offs_n, mask=n_ok, other=0.0)
    if HAS_BIAS:
        y += tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + offs_n, y.to(y_ptr.dtype.element_ty), mask=n_ok)


def plan_gemv(n: int, k: int, num_sms: int = 132) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_K, num_warps)``: one output row per program, 2048-wide K chunks.

    Best or within 1 % of the best of a (1-16) x (256-2048) x (2-8 warps) sweep at every Llama-8B
    shape on the H100 (``benchmarks/bench_gemv.py --sweep``): 2.62-3.16 TB/s against cuBLAS's
    2.01-2.81. ``num_sms`` is kept for plans that depend on the device's size.
    """
    return 1, min(2048, triton.next_power_of_2(max(k, 16))), 4


def gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
         plan: tuple[int, int, int] | None = None, *, scales: tuple[torch.Tensor, torch.Tensor] | None = None,
         out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``x [..., K]`` with one row in all, ``weight [N, K]`` (inner dim contiguous) -> ``[..., N]`` in
    ``out_dtype`` (default ``x``'s). ``scales = (x_scale [1], w_scale [N])`` (fp32) multiply the fp32
    dot products: quantized operands (``fp8_linear``) read in their own dtype."""
    n, k = weight.shape
    if x.numel() != k or weight.stride(1) != 1:
        raise ValueError(f"gemv takes one row of {k} features and a weight with contiguous rows, "
                         f"got x {tuple(x.shape)} and weight strides {weight.stride()}")
    xr = x.reshape(k)
    if xr.stride(0) != 1:
        xr = xr.contiguous()
    y = torch.empty(*x.shape[:-1], n, dtype=out_dtype or x.dtype, device=x.device)
    block_n, block_k, warps = plan or plan_gemv(n, k)
    sx, sw = scales if scales is not None else (y, y)
    _gemv_kernel[(triton.cdiv(n, block_n),)](
        xr, weight, bias if bias is not None else weight, y, sx, sw, n, k, weight.stride(0),
        HAS_BIAS=bias is not None, SCALED=scales is not None, BLOCK_N=block_n, BLOCK_K=block_k,
        EVEN_K=k % block_k == 0, num_warps=warps,
    )
    return y


class InterleavedGateUp:
    """A merged gate/up weight with its rows interleaved (``interleave_gate_up``): what
    ``GemvLinear.prepare_gated`` keeps when it fuses the activation."""

    __slots__ = ("weight", "_bias")

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight
        self._bias: tuple[torch.Tensor, torch.Tensor] | None = None  # (the layer's bias, interleaved like the rows)

    def interleaved_bias(self, bias: torch.Tensor) -> torch.Tensor:
        """``bias`` (gate, then up) in the rows' order, made once per bias tensor."""
        if self._bias is None or self._bias[0] is not bias:
            from plinth_triton.gated_linear import interleave_gate_up

            self._bias = (bias, interleave_gate_up(bias))
        return self._bias[1]


class GemvLinear(LinearMethod):
    """Float linears: the Triton GEMV for a single input row, cuBLAS (``F.linear``) otherwise.

    ``gated_min_rows``: inputs of at least this many rows run a merged gate/up projection as one GEMM
    with SiLU-and-mul fused (the weight's rows interleaved once, after loading); None never fuses
    (the kernel needs TMA: sm_90+). ``residual_min_rows``: inputs of at least this many rows add the
    residual inside cuBLAS's GEMM (``addmm_``, beta = 1) for the projections that feed it; None never does.
    """

    name = UNQUANTIZED

    def __init__(self, num_sms: int = 132, gated_min_rows: int | None = None,
                 residual_min_rows: int | None = None) -> None:
        self.num_sms = num_sms
        self.gated_min_rows = gated_min_rows
        self.residual_min_rows = residual_min_rows

    def apply_add(self, x, prepared, bias, residual):
        if (self.residual_min_rows is None or bias is not None or x.dim() != 2 or x.shape[0] < self.residual_min_rows
                or not isinstance(prepared, torch.Tensor) or residual.dtype != x.dtype or prepared.dtype != x.dtype
                or residual.shape != (x.shape[0], prepared.shape[0]) or not residual.is_contiguous()):
            return None
        return residual.addmm_(x, prepared.t())

    def prepare_gated(self, weight):
        from plinth_triton.gated_linear import fusable_weight, interleave_gate_up

        if self.gated_min_rows is None or not fusable_weight(weight):
            return self.prepare(weight)  # the fused kernel could never take it: keep the plain layout
        return InterleavedGateUp(interleave_gate_up(weight))

    def apply_silu_and_mul(self, x, prepared, bias, silu_and_mul):
        if not isinstance(prepared, InterleavedGateUp):
            return silu_and_mul(self.apply(x, prepared, bias))
        from plinth_triton.activation import silu_and_mul as pairwise
        from plinth_triton.gated_linear import gated_linear, gated_supported

        w = prepared.weight
        if bias is None and x.numel() >= self.gated_min_rows * x.shape[-1] and gated_supported(x, w):
            return gated_linear(x, w, num_programs=self.num_sms)
        if bias is not None:
            bias = prepared.interleaved_bias(bias)
        return pairwise(self.apply(x, w, bias), interleaved=True)

    def prepare(self, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def apply(self, x: torch.Tensor, prepared: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if (x.numel() == prepared.shape[1] and prepared.stride(1) == 1 and x.dtype == prepared.dtype
                and (bias is None or bias.dtype == x.dtype)):
            n, k = prepared.shape
            return gemv(x, prepared, bias, plan_gemv(n, k, self.num_sms))
        return F.linear(x, prepared, bias)
