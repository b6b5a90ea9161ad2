"""An Intel GPU as a device: explicit torch.xpu calls, nothing falls through."""

from __future__ import annotations

import torch

from plinth.platform import DeviceOps


class XpuDeviceOps(DeviceOps):
    device_type = "xpu"

    def torch_device(self, index: int = 0) -> torch.device:
        return torch.device("xpu", index)

    def device_count(self) -> int:
        return torch.xpu.device_count()

    def device_name(self, index: int = 0) -> str:
        return torch.xpu.get_device_name(index)

    def execution_units(self, index: int = 0) -> int:
        """Xe cores x EUs, or a Data Center GPU Max-like guess when torch does not say."""
        props = torch.xpu.get_device_properties(index)
        return int(getattr(props, "gpu_subslice_count", 0) or getattr(props, "max_compute_units", 0) or 128)

    def total_memory(self, index: int = 0) -> int:
        return int(torch.xpu.get_device_properties(index).total_memory)

    def free_memory(self, index: int = 0) -> int:
        if hasattr(torch.xpu, "mem_get_info"):  # torch >= 2.6
            return int(torch.xpu.mem_get_info(index)[0])
        return self.total_memory(index) - int(torch.xpu.memory_reserved(index))

    def synchronize(self, index: int | None = None) -> None:
        torch.xpu.synchronize(index)

    def empty_cache(self) -> None:
        torch.xpu.empty_cache()

    def set_device(self, index: int) -> None:
        torch.xpu.set_device(index)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        torch.xpu.manual_seed_all(seed)

    def pin_memory_supported(self) -> bool:
        return True
