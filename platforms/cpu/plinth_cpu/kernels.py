"""Torch-facing wrappers of the C++ kernels, and the registry the platform hands to core.

Each wrapper keeps the reference op's signature and semantics. It checks what the C++ side
cannot (dtype, device, strides; the kernels check index bounds) and falls back to the reference
op for calls outside what the kernel handles, so a registered kernel never changes a result.
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


def _dense_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised row-major tensor of ``x``'s shape and dtype (faster than ``torch.empty(x.shape)``)."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _rows(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` with rows of ``width`` dense elements, ``stride(0)`` apart: ``x`` itself when it is
    ``[rows, width]`` or ``[rows, heads, head_size]`` with dense rows, else a view or copy."""
    dim = x.dim()
    if dim == 2 and x.shape[1] == width and x.stride(1) == 1:
        return x
    if dim == 3 and x.stride(2) == 1 and x.stride(1) == x.shape[2] and x.shape[1] * x.shape[2] == width:
        return x
    x2 = x.reshape(-1, width)
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


class CsrcOps:
    """The contract ops on one loaded ``plinth_cpu._C`` module.

    The checks are the cheap ones (dtype, device, layout: attributes, no tensor ops); index bounds
    (positions, slots) are checked by the kernels, which then write nothing and return False.
    A decode step calls these ~5 times per layer, so every microsecond here is ~0.15 ms a token.
    """

    def __init__(self, module: Any) -> None:
        self.C = module

    def rms_norm(self, x, weight, eps):
        code, hidden = DTYPE_CODES.get(x.dtype), x.shape[-1]
        if (code is None or weight.dtype != x.dtype or not (x.is_cpu and weight.is_cpu and weight.is_contiguous())
                or weight.shape[0] != hidden):
            return reference.rms_norm(x, weight, eps)
        x2, out = _rows(x, hidden), _dense_like(x)
        self.C.rms_norm(out.data_ptr(), 0, x2.data_ptr(), 0, weight.data_ptr(), x2.shape[0], hidden,
                        x2.stride(0), 0, float(eps), code, torch.get_num_threads())
        return out

    def fused_add_rms_norm(self, x, residual, weight, eps):
        code, hidden = DTYPE_CODES.get(x.dtype), x.shape[-1]
        if (code is None or weight.dtype != x.dtype or residual.dtype != x.dtype or x.shape != residual.shape
                or not (x.is_cpu and residual.is_cpu and weight.is_cpu and weight.is_contiguous())
                or weight.shape[0] != hidden):
            return reference.fused_add_rms_norm(x, residual, weight, eps)
        x2, r2 = _rows(x, hidden), _rows(residual, hidden)
        out, summed = _dense_like(x), _dense_like(x)
        self.C.rms_norm(out.data_ptr(), summed.data_ptr(), x2.data_ptr(), r2.data_ptr(), weight.data_ptr(),
                        x2.shape[0], hidden, x2.stride(0), r2.stride(0), float(eps), code, torch.get_num_threads())
        return out, summed

    def silu_and_mul(self, x):
        code, width = DTYPE_CODES.get(x.dtype), x.shape[-1]
        if code is None or not x.is_cpu or width % 2:
            return reference.silu_and_mul(x)
        d = width // 2
        x2 = _rows(x, width)
        out = torch.empty(x2.shape[0], d, dtype=x.dtype) if x.dim() == 2 else \
            torch.empty((*x.shape[:-1], d), dtype=x.dtype)
        self.C.silu_and_mul(out.data_ptr(), x2.data_ptr(), x2.shape[0], d, x2.stride(0), code,
                            torch.get_num_threads())
        return out

    def rotary_embedding(self, positions, query, key, head_size, cos_sin_cache, is_neox_style=True):
        code, cache_code = DTYPE_CODES.get(query.dtype), DTYPE_CODES.get(cos_sin_cache.dtype)
        rot, n = cos_sin_cache.shape[-1], positions.numel()
        if (code is None or cache_code is None or key.dtype != query.dtype or rot % 2 or rot > min(head_size, 1024)
                or n == 0 or n != query.shape[0] or n != key.shape[0] or cos_sin_cache.dim() != 2
                or not (query.is_cpu and key.is_cpu and positions.is_cpu and cos_sin_cache.is_contiguous())):
            return reference.rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox_style)
        q2, k2 = _rows(query, query.numel() // n), _rows(key, key.numel() // n)
        pos = positions if positions.dtype == torch.int64 and positions.is_contiguous() else \
            positions.reshape(-1).to(torch.int64).contiguous()
        q_out, k_out = _dense_like(query), _dense_like(key)
        if self.C.rotary(q_out.data_ptr(), k_out.data_ptr(), q2.data_ptr(), k2.data_ptr(), pos.data_ptr(),
                         cos_sin_cache.data_ptr(), cos_sin_cache.shape[0], n, q2.shape[1] // head_size,
                         k2.shape[1] // head_size, head_size, rot, q2.stride(0), k2.stride(0), bool(is_neox_style),
                         code, cache_code, torch.get_num_threads()):
            return q_out, k_out
        return reference.rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox_style)

    def write_kv(self, key, value, kv_cache, slot_mapping):
        n = slot_mapping.shape[0]
        code, cache_code = DTYPE_CODES.get(key.dtype), DTYPE_CODES.get(kv_cache.dtype)
        if (code is None or cache_code is None or value.dtype != key.dtype or kv_cache.dim() != 5
                or n > key.shape[0] or n > value.shape[0]
                or not (key.is_cpu and value.is_cpu and slot_mapping.is_cpu and kv_cache.is_contiguous())):
            return reference.write_kv(key, value, kv_cache, slot_mapping)
        _, blocks, block_size, heads, head_size = kv_cache.shape
        width = heads * head_size
        k2 = _rows(key if key.shape[0] == n else key[:n], width)
        v2 = _rows(value if value.shape[0] == n else value[:n], width)
        slots = slot_mapping if slot_mapping.dtype == torch.int64 and slot_mapping.is_contiguous() else \
            slot_mapping.to(torch.int64).contiguous()
        half = kv_cache.numel() // 2 * kv_cache.element_size()
        if not self.C.write_kv(kv_cache.data_ptr(), kv_cache.data_ptr() + half, k2.data_ptr(), v2.data_ptr(),
                               slots.data_ptr(), blocks * block_size, n, width, k2.stride(0), v2.stride(0), code,
                               cache_code, torch.get_num_threads()):
            reference.write_kv(key, value, kv_cache, slot_mapping)
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
