"""Host CPU as a device: memory from the OS, seeding through torch."""

from __future__ import annotations

import os

import torch

from plinth.platform import DeviceOps
from plinth_cpu.isa import detect


def _meminfo_bytes(field: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class CpuDeviceOps(DeviceOps):
    device_type = "cpu"

    def torch_device(self, index: int = 0) -> torch.device:
        return torch.device("cpu")

    def device_count(self) -> int:
        return 1

    def device_name(self, index: int = 0) -> str:
        return detect().model

    def total_memory(self, index: int = 0) -> int:
        total = _meminfo_bytes("MemTotal")
        return total if total is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def free_memory(self, index: int = 0) -> int:
        free = _meminfo_bytes("MemAvailable")
        return free if free is not None else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")

    def synchronize(self, index: int | None = None) -> None:
        return None  # CPU ops are synchronous

    def empty_cache(self) -> None:
        return None

    def set_device(self, index: int) -> None:
        if index != 0:
            raise ValueError(f"the cpu platform has one device (index 0), got {index}")

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def pin_memory_supported(self) -> bool:
        return False
