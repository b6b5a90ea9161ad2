"""Device operations over torch's ``torch.cuda`` namespace, shared by CUDA and ROCm.

ROCm builds of torch expose HIP devices through the same namespace (device type
"cuda"), so both platforms' devices are these explicit calls; each platform adds its
own extras (compute capability, GCN architecture) in a subclass.
"""

from __future__ import annotations

import torch

from plinth.platform import DeviceOps


class CudaNamespaceDeviceOps(DeviceOps):
    device_type = "cuda"

    def torch_device(self, index: int = 0) -> torch.device:
        return torch.device("cuda", index)

    def device_count(self) -> int:
        return torch.cuda.device_count()

    def device_name(self, index: int = 0) -> str:
        return torch.cuda.get_device_name(index)

    def multiprocessor_count(self, index: int = 0) -> int:
        return torch.cuda.get_device_properties(index).multi_processor_count  # SMs, or CUs on ROCm

    def total_memory(self, index: int = 0) -> int:
        return int(torch.cuda.mem_get_info(index)[1])

    def free_memory(self, index: int = 0) -> int:
        return int(torch.cuda.mem_get_info(index)[0])

    def synchronize(self, index: int | None = None) -> None:
        torch.cuda.synchronize(index)

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()

    def set_device(self, index: int) -> None:
        torch.cuda.set_device(index)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        torch.cuda.manual_seed_all(seed)

    def pin_memory_supported(self) -> bool:
        return True
