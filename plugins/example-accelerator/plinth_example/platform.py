"""The example platform: one small class per part of the contract."""

from __future__ import annotations

import os

import torch

from plinth.platform import Capabilities, ConfigPatch, DeviceOps, Feature, KernelRegistry, Op, Platform
from plinth_example.attention import ExampleAttentionBackend

SUPPORTED_BLOCK_SIZES = (16, 32)


def _meminfo_bytes(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class ExampleDeviceOps(DeviceOps):
    """One simulated device whose memory is the host's. A vendor calls its runtime here."""

    device_type = "cpu"

    def device_count(self) -> int:
        return 1

    def device_name(self, index: int = 0) -> str:
        return "Example Accelerator (simulated on host CPU)"

    def total_memory(self, index: int = 0) -> int:
        return _meminfo_bytes("MemTotal") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def free_memory(self, index: int = 0) -> int:
        free = _meminfo_bytes("MemAvailable") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        return min(free, self.total_memory(index))

    def synchronize(self, index: int | None = None) -> None:
        pass  # host tensors: every op has finished when it returns

    def empty_cache(self) -> None:
        pass

    def set_device(self, index: int) -> None:
        if index != 0:
            raise ValueError(f"the example platform has one device (index 0), got index {index}")

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def pin_memory_supported(self) -> bool:
        return False


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm via ``torch.linalg.vector_norm`` (same semantics as the reference)."""
    xf = x.float()
    rms = torch.linalg.vector_norm(xf, dim=-1, keepdim=True) / xf.shape[-1] ** 0.5
    return weight * (xf / torch.sqrt(rms * rms + eps)).to(x.dtype)


class ExamplePlatform(Platform):
    """Device ``example``: what a vendor fills in, part by part."""

    name = "example"

    def __init__(self) -> None:
        self._device = ExampleDeviceOps()
        self._capabilities = Capabilities(
            dtypes=("float32", "bfloat16"),
            kv_cache_dtypes=("float32", "bfloat16"),
            graph_modes=("eager",),
            distributed_backend="gloo",
            features=frozenset({Feature.PREFIX_CACHING, Feature.CHUNKED_PREFILL}),
            info={"kv_layout": "head-major", "attention": "online softmax"},
        )

    @property
    def device(self) -> DeviceOps:
        return self._device

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def configure(self, config) -> ConfigPatch:
        """Ask for a block size our attention supports; refuse dtypes we cannot compute in."""
        errors = []
        if config.dtype not in ("auto", *self._capabilities.dtypes):
            errors.append(f"dtype {config.dtype!r} is not supported; use one of "
                          f"{', '.join(self._capabilities.dtypes)}")
        block_size = None if config.cache.block_size in SUPPORTED_BLOCK_SIZES else SUPPORTED_BLOCK_SIZES[0]
        return ConfigPatch(block_size=block_size, graph_mode="eager",
                           dtype=self._capabilities.default_dtype, errors=tuple(errors))

    def attention_backends(self) -> list[ExampleAttentionBackend]:
        return [ExampleAttentionBackend()]

    def kernels(self) -> KernelRegistry:
        registry = KernelRegistry()
        registry.register(Op.RMS_NORM, _rms_norm, name="example.rms_norm")
        return registry
