"""Triton kernels shared by plinth's GPU platforms (CUDA, ROCm, XPU): no platform imports here.

``register_kernels(registry)`` adds the elementwise ops to a ``KernelRegistry``;
``TritonAttentionBackend`` is a unified varlen paged-attention backend (standard KV layout).
"""

from plinth_triton.registry import register_kernels

__all__ = ["register_kernels"]
