"""Torch-facing wrappers of the C++ kernels, and the registry the platform hands to core.

Each wrapper keeps the reference op's signature and semantics. It checks what the C++ side
cannot (dtype, device, strides, index bounds) and falls back to the reference op for
calls outside what the kernel handles, so a registered kernel never changes a result.
"""

from __future__ import annotations

from typing import Any

import torch

from plinth.ops import reference
from plinth.platform import KernelRegistry, Op

DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
SUPPORTED = ("float32", "bfloat16")

#: ops whose csrc kernel beat the torch path in benchmarks/bench_cpu_kernels.py on this
#: machine class (see benchmarks/RESULTS.md); silu_and_mul did not (0.4-1.0x: torch's
#: vectorised silu is as fast), so it stays built and tested but unregistered
REGISTERED = (Op.RMS_NORM, Op.FUSED_ADD_RMS_NORM, Op.ROTARY_EMBEDDING, Op.WRITE_KV)


def _rows(x: torch.Tensor, width: int) -> torch.Tensor | None:
    """``x`` as ``[rows, width]`` with unit inner stride (a view when possible)."""
    x2 = x.reshape(-1, width)
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def _ok(*tensors: torch.Tensor, dtype: torch.dtype | None = None) -> bool:
    dtype = dtype or tensors[0].dtype
    return dtype in DTYPE_CODES and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)


class CsrcOps:
    """The contract ops on one loaded ``plinth_cpu._C`` module."""

    def __init__(self, module: Any) -> None:
        self.C = module

    def rms_norm(self, x, weight, eps):
        if not (_ok(x, weight) and weight.is_contiguous()):
            return reference.rms_norm(x, weight, eps)
        hidden = x.shape[-1]
        x2, out = _rows(x, hidden), torch.empty(x.shape, dtype=x.dtype)
        self.C.rms_norm(out.data_ptr(), 0, x2.data_ptr(), 0, weight.data_ptr(), x2.shape[0], hidden,
                        x2.stride(0), 0, float(eps), DTYPE_CODES[x.dtype], torch.get_num_threads())
        return out

    def fused_add_rms_norm(self, x, residual, weight, eps):
        if not (_ok(x, residual, weight) and weight.is_contiguous() and x.shape == residual.shape):
            return reference.fused_add_rms_norm(x, residual, weight, eps)
        hidden = x.shape[-1]
        x2, r2 = _rows(x, hidden), _rows(residual, hidden)
        out, summed = torch.empty(x.shape, dtype=x.dtype), torch.empty(x.shape, dtype=x.dtype)
        self.C.rms_norm(out.data_ptr(), summed.data_ptr(), x2.data_ptr(), r2.data_ptr(), weight.data_ptr(),
                        x2.shape[0], hidden, x2.stride(0), r2.stride(0), float(eps), DTYPE_CODES[x.dtype],
                        torch.get_num_threads())
        return out, summed

    def silu_and_mul(self, x):
        if not _ok(x) or x.shape[-1] % 2:
            return reference.silu_and_mul(x)
        d = x.shape[-1] // 2
        x2, out = _rows(x, 2 * d), torch.empty((*x.shape[:-1], d), dtype=x.dtype)
        self.C.silu_and_mul(out.data_ptr(), x2.data_ptr(), x2.shape[0], d, x2.stride(0), DTYPE_CODES[x.dtype],
                            torch.get_num_threads())
        return out

    def rotary_embedding(self, positions, query, key, head_size, cos_sin_cache, is_neox_style=True):
        rot = cos_sin_cache.shape[-1]
        n = positions.numel()
        if not (_ok(query, key) and cos_sin_cache.dtype in DTYPE_CODES and cos_sin_cache.is_contiguous()
                and rot % 2 == 0 and rot <= min(head_size, 1024) and n == query.shape[0] == key.shape[0]
                and n > 0 and int(positions.max()) < cos_sin_cache.shape[0] and int(positions.min()) >= 0):
            return reference.rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox_style)
        q2, k2 = _rows(query, query[0].numel()), _rows(key, key[0].numel())
        pos = positions.reshape(-1).to(torch.int64).contiguous()
        q_out, k_out = torch.empty(query.shape, dtype=query.dtype), torch.empty(key.shape, dtype=key.dtype)
        self.C.rotary(q_out.data_ptr(), k_out.data_ptr(), q2.data_ptr(), k2.data_ptr(), pos.data_ptr(),
                      cos_sin_cache.data_ptr(), n, q2.shape[1] // head_size, k2.shape[1] // head_size, head_size,
                      rot, q2.stride(0), k2.stride(0), bool(is_neox_style), DTYPE_CODES[query.dtype],
                      DTYPE_CODES[cos_sin_cache.dtype], torch.get_num_threads())
        return q_out, k_out

    def write_kv(self, key, value, kv_cache, slot_mapping):
        n = slot_mapping.shape[0]
        capacity = kv_cache[0].numel() // kv_cache[0, 0, 0].numel() if kv_cache.dim() == 5 else 0
        if not (_ok(key, value) and kv_cache.dtype in DTYPE_CODES and kv_cache.is_contiguous()
                and kv_cache.dim() == 5 and n <= key.shape[0] and (n == 0 or int(slot_mapping.max()) < capacity)):
            return reference.write_kv(key, value, kv_cache, slot_mapping)
        width = kv_cache.shape[-1] * kv_cache.shape[-2]
        k2, v2 = _rows(key[:n], width), _rows(value[:n], width)
        slots = slot_mapping.to(torch.int64).contiguous()
        half = kv_cache.numel() // 2 * kv_cache.element_size()
        self.C.write_kv(kv_cache.data_ptr(), kv_cache.data_ptr() + half, k2.data_ptr(), v2.data_ptr(),
                        slots.data_ptr(), n, width, k2.stride(0), v2.stride(0), DTYPE_CODES[key.dtype],
                        DTYPE_CODES[kv_cache.dtype], torch.get_num_threads())
        return None


def _supports(traits: dict) -> bool:
    return traits.get("dtype") in SUPPORTED and traits.get("device_type", "cpu") == "cpu"


def build_registry(module: Any | None, isa: str, ops: tuple[str, ...] = REGISTERED) -> KernelRegistry:
    """Registry of the csrc kernels in ``ops`` (empty when the extension is off)."""
    registry = KernelRegistry()
    if module is None:
        return registry
    impl = CsrcOps(module)
    for op in ops:
        registry.register(op, getattr(impl, op), name=f"csrc-{isa}.{op}", priority=10, supports=_supports)
    return registry
