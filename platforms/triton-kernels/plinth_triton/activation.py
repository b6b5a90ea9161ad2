"""SiLU-and-mul: ``silu(x[..., :d]) * x[..., d:]`` with the reference's rounding points."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _silu_and_mul_kernel(x_ptr, out_ptr, d, stride_x, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < d
    gate = tl.load(x_ptr + row * stride_x + offs, mask=ok, other=0.0)
    up = tl.load(x_ptr + row * stride_x + d + offs, mask=ok, other=0.0)
    g = gate.to(tl.float32)
    silu = (g / (1.0 + tl.exp(-g))).to(gate.dtype)
    tl.store(out_ptr + row * d + offs, (silu.to(tl.float32) * up.to(tl.float32)).to(gate.dtype), mask=ok)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """Same contract as ``plinth.ops.reference.silu_and_mul``."""
    d = x.shape[-1] // 2
    rows = x.numel() // x.shape[-1]
    x2 = x.reshape(rows, 2 * d)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    out = torch.empty(*x.shape[:-1], d, dtype=x.dtype, device=x.device)
    if rows:
        block = min(1024, triton.next_power_of_2(d))
        _silu_and_mul_kernel[(rows, triton.cdiv(d, block))](x2, out, d, x2.stride(0), BLOCK=block, num_warps=4)
    return out
