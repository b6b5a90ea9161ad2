"""The CPU platform keeps freed activation memory in the heap (no mmap per big tensor)."""

from __future__ import annotations

import ctypes
import sys

import pytest
import torch

from plinth_cpu.host_memory import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mmapped_bytes() -> int:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblkhd


def test_big_activations_come_from_the_heap_not_fresh_mmaps():
    if not keep_freed_memory():
        pytest.skip("malloc is not glibc's")
    before = _mmapped_bytes()
    tensors = [torch.empty(24 * 2**20, dtype=torch.uint8) for _ in range(3)]  # a gate_up output each
    assert _mmapped_bytes() - before < 2**20, "24 MiB tensors were mmapped: the threshold was not raised"
    del tensors


def test_platform_set_up_applies_it():
    from plinth_cpu.platform import CpuPlatform

    keep_freed_memory.cache_clear()
    CpuPlatform().setup_process()
    assert keep_freed_memory.cache_info().currsize == 1
