"""A PJRT device (TPU core, or XLA:CPU) as plinth sees it: explicit torch_xla calls."""

from __future__ import annotations

import os

import torch
import torch_xla
import torch_xla.core.xla_model as xm
import torch_xla.runtime as xr

from plinth.platform import DeviceOps


def _host_meminfo(field: str) -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = "SC_PHYS_PAGES" if field == "MemTotal" else "SC_AVPHYS_PAGES"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf(pages)


class XlaDeviceOps(DeviceOps):
    """One process drives its addressable PJRT devices; index 0 is the default device."""

    device_type = "xla"

    def torch_device(self, index: int = 0) -> torch.device:
        return torch_xla.device(index)

    def hardware(self) -> str:
        """``"TPU"``, ``"CPU"``, ...: the PJRT device type."""
        return xr.device_type() or xm.xla_device_hw(self.torch_device())

    def device_count(self) -> int:
        return xr.addressable_runtime_device_count()

    def device_name(self, index: int = 0) -> str:
        hw = self.hardware()
        if hw == "TPU":
            try:
                return f"TPU v{torch_xla.tpu.version()}"
            except Exception:  # older runtimes cannot tell the generation
                return "TPU"
        return f"XLA:{hw}"

    def _memory(self, index: int) -> dict | None:
        try:
            return xm.get_memory_info(self.torch_device(index))
        except RuntimeError:  # XLA:CPU has no allocator statistics
            return None

    def total_memory(self, index: int = 0) -> int:
        info = self._memory(index)
        return int(info["bytes_limit"]) if info else _host_meminfo("MemTotal")

    def free_memory(self, index: int = 0) -> int:
        info = self._memory(index)
        if info:
            return int(info["bytes_limit"]) - int(info["bytes_used"])
        return min(_host_meminfo("MemAvailable"), self.total_memory(index))

    def synchronize(self, index: int | None = None) -> None:
        torch_xla.sync()
        xm.wait_device_ops()

    def empty_cache(self) -> None:
        return None  # PJRT frees buffers when their tensors die

    def set_device(self, index: int) -> None:
        if not 0 <= index < self.device_count():
            raise ValueError(f"PJRT device index {index} out of range [0, {self.device_count()})")

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        torch_xla.manual_seed(seed)

    def pin_memory_supported(self) -> bool:
        return False
