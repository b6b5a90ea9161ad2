"""An NVIDIA GPU as a device: the shared torch.cuda device ops plus compute capability."""

from __future__ import annotations

import torch
from plinth_triton.cuda_namespace_device import CudaNamespaceDeviceOps


class CudaDeviceOps(CudaNamespaceDeviceOps):
    def compute_capability(self, index: int = 0) -> tuple[int, int]:
        return torch.cuda.get_device_capability(index)

    def shared_memory_per_sm(self, index: int = 0) -> int:
        """Bytes of shared memory one SM has (torch builds without the field: 228 KB on sm_90 / sm_100, else 0)."""
        props = torch.cuda.get_device_properties(index)
        smem = getattr(props, "shared_memory_per_multiprocessor", None)
        if smem is None:
            return 228 * 1024 if props.major in (9, 10) else 0
        return int(smem)
