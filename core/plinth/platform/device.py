"""Device operations a platform must supply: explicit methods, no fall-through to torch.<dev>."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class DeviceOps(ABC):
    """The device as core sees it. Indexes are local device ordinals."""

    #: torch device type the platform's tensors live on (cpu, xla, a vendor's own type, ...).
    device_type: str

    def torch_device(self, index: int = 0) -> torch.device:
        """The ``torch.device`` for ``index``."""
        import torch

        return torch.device(self.device_type, index) if self.device_count() > 1 else torch.device(
            self.device_type
        )

    @abstractmethod
    def device_count(self) -> int:
        """How many devices of this kind this process can use."""

    @abstractmethod
    def device_name(self, index: int = 0) -> str:
        """Marketing name of the device, e.g. "NVIDIA H100 80GB HBM3"."""

    @abstractmethod
    def total_memory(self, index: int = 0) -> int:
        """Total memory in bytes usable for weights, activations and KV cache."""

    @abstractmethod
    def free_memory(self, index: int = 0) -> int:
        """Memory in bytes free right now."""

    @abstractmethod
    def synchronize(self, index: int | None = None) -> None:
        """Wait for all queued work on the device."""

    @abstractmethod
    def empty_cache(self) -> None:
        """Return cached allocator memory to the device (no-op where meaningless)."""

    @abstractmethod
    def set_device(self, index: int) -> None:
        """Make ``index`` the current device of this process."""

    @abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the device's random number generators."""

    @abstractmethod
    def pin_memory_supported(self) -> bool:
        """Whether host tensors may be pinned for faster non-blocking copies."""
