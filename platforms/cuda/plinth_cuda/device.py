"""An NVIDIA GPU as a device: the shared torch.cuda device ops plus compute capability."""

from __future__ import annotations

import torch

from plinth_triton.cuda_namespace_device import CudaNamespaceDeviceOps


class CudaDeviceOps(CudaNamespaceDeviceOps):
    def compute_capability(self, index: int = 0) -> tuple[int, int]:
        return torch.cuda.get_device_capability(index)
