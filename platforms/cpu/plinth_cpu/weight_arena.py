"""Packed weights carved from big 2 MiB-aligned host buffers advised for transparent huge pages.

Decode streams every weight byte once per token (SmolLM2: 270 MB), so TLB misses of 4 KiB pages
cost bandwidth: with ``MADV_HUGEPAGE`` the gemv kernel read the model's linears at 48 vs 45.7 GB/s
(benchmarks/RESULTS.md, CPU round 4). Linux's default THP mode (``madvise``) only backs advised
ranges with huge pages, so the arena advises each chunk before anything touches it. Elsewhere
(no Linux, no libc) the arena is just a bump allocator over ordinary memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import mmap
import sys

import torch

HUGE_PAGE = 2 * 2**20
CHUNK_BYTES = 64 * 2**20
ALIGN = 64  # bytes between tensors: a cache line
MADV_HUGEPAGE = 14  # <sys/mman.h> on Linux


@functools.cache
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return fn


def advise_huge_pages(address: int, nbytes: int) -> bool:
    """Ask for huge pages on ``[address, address + nbytes)`` (2 MiB-aligned); False if refused."""
    fn = _madvise()
    return fn is not None and fn(address, nbytes, MADV_HUGEPAGE) == 0


class WeightArena:
    """Hands out uninitialised tensors from chunks of ``chunk_bytes`` (a bigger request gets its own
    chunk); a tensor keeps its chunk alive. Unused chunk tails are never touched, so never resident."""

    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes
        self._chunk: torch.Tensor | None = None
        self._offset = self._end = 0
        self.huge_pages = False  # whether the last chunk's advice was taken

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        nbytes = math.prod(shape) * dtype.itemsize
        if self._chunk is None or self._offset + nbytes > self._end:
            self._new_chunk(max(self.chunk_bytes, nbytes))
        start = self._offset
        self._offset += -(-nbytes // ALIGN) * ALIGN
        return self._chunk[start:start + nbytes].view(dtype).view(shape)

    def _new_chunk(self, nbytes: int) -> None:
        # a fresh anonymous mapping, never touched: malloc could hand back heap pages that are
        # already resident (freed loading buffers), and advice does not convert those
        size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
        mapping = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # private: THP applies
        chunk = torch.frombuffer(mapping, dtype=torch.uint8)  # the tensor keeps the mapping alive
        start = -chunk.data_ptr() % HUGE_PAGE
        self.huge_pages = advise_huge_pages(chunk.data_ptr() + start, size)
        self._chunk, self._offset, self._end = chunk, start, start + size
