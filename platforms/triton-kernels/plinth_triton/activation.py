"""SiLU-and-mul: ``silu(x[..., :d]) * x[..., d:]`` with the reference's rounding points.

``interleaved=True`` reads the gate/up pairs side by side instead (``x[..., 2j]`` gate, ``x[..., 2j + 1]``
up): the output of a gate/up weight whose rows a linear method interleaved (``plinth_triton.gated_linear``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _silu_and_mul_kernel(x_ptr, out_ptr, d, stride_x, BLOCK: tl.constexpr, INTERLEAVED: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < d
    if INTERLEAVED:
        pairs = x_ptr + row * stride_x + 2 * offs[:, None] + tl.arange(0, 2)[None, :]
        gate, up = tl.split(tl.load(pairs, mask=ok[:, None], other=0.0))
    else:
        gate = tl.load(x_ptr + row * stride_x + offs, mask=ok, other=0.0)
        up = tl.load(x_ptr + row * stride_x + d + offs, mask=ok, other=0.0)
    g = gate.to(tl.float32)
    silu = (g / (1.0 + tl.exp(-g))).to(gate.dtype)
    tl.store(out_ptr + row * d + offs, (silu.to(tl.float32) * up.to(tl.float32)).to(gate.dtype), mask=ok)


def silu_and_mul(x: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
    """Same contract as ``plinth.ops.reference.silu_and_mul`` (``interleaved``: gate/up pairs side by side)."""
    d = x.shape[-1] // 2
    rows = x.numel() // x.shape[-1]
    x2 = x.reshape(rows, 2 * d)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    out = torch.empty(*x.shape[:-1], d, dtype=x.dtype, device=x.device)
    if rows:
        block = min(1024, triton.next_power_of_2(d))
        _silu_and_mul_kernel[(rows, triton.cdiv(d, block))](x2, out, d, x2.stride(0), BLOCK=block,
                                                            INTERLEAVED=interleaved, num_warps=4)
    return out
