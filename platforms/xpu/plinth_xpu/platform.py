"""The XPU platform: the shared Triton kernels (Intel XPU backend), XPU graphs where torch has them, xccl."""

from __future__ import annotations

from functools import cached_property

import torch

from plinth.platform import (
    Capabilities,
    EagerGraphRunner,
    Feature,
    GraphRunner,
    KernelRegistry,
    Platform,
    StreamGraphRunner,
)
from plinth_xpu.config import graph_modes, has_ipex, has_xccl, xpu_config_patch
from plinth_xpu.device import XpuDeviceOps


class XpuPlatform(Platform):
    name = "xpu"

    def __init__(self) -> None:
        from plinth_triton.attention_backend import TritonAttentionBackend

        self._device = XpuDeviceOps()
        self._backends = (TritonAttentionBackend(num_sms=self._device.execution_units(), dense_prefill=False),)

    @property
    def device(self) -> XpuDeviceOps:
        return self._device

    @cached_property
    def capabilities(self) -> Capabilities:
        import torch.distributed as dist

        return Capabilities(
            dtypes=("bfloat16", "float16", "float32"),
            kv_cache_dtypes=("bfloat16", "float16", "float32"),
            graph_modes=graph_modes(torch.xpu),
            distributed_backend="xccl" if has_xccl(dist) else None,
            features=frozenset({Feature.PREFIX_CACHING, Feature.CHUNKED_PREFILL, Feature.PROFILE_RUN}),
            info={"device": self._device.device_name(), "torch": torch.__version__,
                  "ipex": "present (unused by default)" if has_ipex() else "absent",
                  "verified": "not run on Intel hardware"},
        )

    def configure(self, config):
        return xpu_config_patch(config, self.capabilities.graph_modes, self._backends[0].supported_block_sizes)

    def attention_backends(self):
        return self._backends

    def kernels(self) -> KernelRegistry:
        from plinth_triton import register_kernels

        registry = KernelRegistry()
        register_kernels(registry, device_types=("xpu",))  # Triton's Intel XPU backend compiles the same kernels
        return registry

    def graph_runner(self, config) -> GraphRunner:
        if config.graph.mode == "xpu_graph":
            return StreamGraphRunner(torch.xpu, torch.xpu.XPUGraph, mode="xpu_graph")
        return EagerGraphRunner()
