"""RMSNorm and fused residual-add + RMSNorm, with HF Llama's rounding points."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr, res_out_ptr, eps, inner, stride_xa, stride_xb, stride_ra,
    HIDDEN: tl.constexpr, BLOCK: tl.constexpr, ADD: tl.constexpr,
):
    row = tl.program_id(0)
    a = row // inner
    b = row % inner
    offs = tl.arange(0, BLOCK)
    ok = offs < HIDDEN
    x = tl.load(x_ptr + a.to(tl.int64) * stride_xa + b * stride_xb + offs, mask=ok, other=0.0)
    if ADD:
        r = tl.load(res_ptr + row.to(tl.int64) * stride_ra + offs, mask=ok, other=0.0)
        x = (x.to(tl.float32) + r.to(tl.float32)).to(x.dtype)  # the sum is rounded, as in the reference
        tl.store(res_out_ptr + row.to(tl.int64) * HIDDEN + offs, x, mask=ok)
    xf = x.to(tl.float32)
    var = tl.sum(xf * xf, 0) / HIDDEN
    normed = (xf * tl.rsqrt(var + eps)).to(x.dtype)
    w = tl.load(w_ptr + offs, mask=ok, other=0.0)
    out = (w.to(tl.float32) * normed.to(tl.float32)).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + row.to(tl.int64) * HIDDEN + offs, out, mask=ok)


def _as_rows(x: torch.Tensor) -> tuple[torch.Tensor, int, int, int]:
    """``(x, inner, stride_a, stride_b)``: rows are ``(a, b)`` pairs over the leading dims."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    if x.dim() == 2:
        return x, 1, x.stride(0), 0
    if x.dim() == 3:
        return x, x.shape[1], x.stride(0), x.stride(1)
    x = x.reshape(-1, x.shape[-1]).contiguous()
    return x, 1, x.stride(0), 0


def _launch(x, residual, weight, eps):
    hidden = x.shape[-1]
    xs, inner, sa, sb = _as_rows(x)
    rows = x.numel() // hidden
    out = torch.empty(x.shape, dtype=torch.promote_types(weight.dtype, x.dtype), device=x.device)
    res_out = torch.empty(x.shape, dtype=x.dtype, device=x.device) if residual is not None else out
    res = residual.reshape(rows, hidden) if residual is not None else x
    if residual is not None and res.stride(-1) != 1:
        res = res.contiguous()
    if rows:
        block = triton.next_power_of_2(hidden)
        _rms_norm_kernel[(rows,)](
            xs, res, weight, out, res_out, eps, inner, sa, sb, res.stride(0) if residual is not None else 0,
            HIDDEN=hidden, BLOCK=block, ADD=residual is not None, num_warps=min(16, max(1, block // 256)),
        )
    return out, res_out


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Same contract as ``plinth.ops.reference.rms_norm``."""
    return _launch(x, None, weight, eps)[0]


def fused_add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``plinth.ops.reference.fused_add_rms_norm``: ``(norm(x + r), x + r)``."""
    return _launch(x, residual, weight, eps)
