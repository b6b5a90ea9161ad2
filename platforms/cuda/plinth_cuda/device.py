"""An NVIDIA GPU as a device: explicit torch.cuda calls, nothing falls through."""

from __future__ import annotations

import torch

from plinth.platform import DeviceOps


class CudaDeviceOps(DeviceOps):
    device_type = "cuda"

    def torch_device(self, index: int = 0) -> torch.device:
        return torch.device("cuda", index)

    def device_count(self) -> int:
        return torch.cuda.device_count()

    def device_name(self, index: int = 0) -> str:
        return torch.cuda.get_device_name(index)

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

    def multiprocessor_count(self, index: int = 0) -> int:
        return torch.cuda.get_device_properties(index).multi_processor_count

    def compute_capability(self, index: int = 0) -> tuple[int, int]:
        return torch.cuda.get_device_capability(index)
