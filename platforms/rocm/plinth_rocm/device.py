"""An AMD GPU as a device. ROCm torch exposes HIP through the ``torch.cuda`` namespace."""

from __future__ import annotations

import torch
from plinth_triton.cuda_namespace_device import CudaNamespaceDeviceOps


class RocmDeviceOps(CudaNamespaceDeviceOps):
    def gcn_arch(self, index: int = 0) -> str:
        """``gfx942`` (MI300X/MI325X), ``gfx90a`` (MI200), ``gfx1100`` (RDNA3), ..."""
        return getattr(torch.cuda.get_device_properties(index), "gcnArchName", "unknown").split(":")[0]
