"""The ROCm platform: the shared Triton kernels and attention, HIP graphs, RCCL (``nccl``)."""

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
from plinth_rocm.config import GRAPH_MODES, MI300_CLASS, rocm_batch_defaults, rocm_config_patch
from plinth_rocm.device import RocmDeviceOps


class RocmPlatform(Platform):
    name = "rocm"

    def __init__(self) -> None:
        from plinth_triton.attention_backend import TritonAttentionBackend

        self._device = RocmDeviceOps()
        self._backends = (TritonAttentionBackend(num_sms=self._device.multiprocessor_count(), dense_prefill=False),)

    @property
    def device(self) -> RocmDeviceOps:
        return self._device

    @cached_property
    def capabilities(self) -> Capabilities:
        arch = self._device.gcn_arch()
        features = {Feature.PREFIX_CACHING, Feature.CHUNKED_PREFILL, Feature.PROFILE_RUN}  # Triton JIT kernels
        if arch in MI300_CLASS:
            features.add(Feature.FP8)  # OCP/FNUZ fp8 matrix cores (no fp8 kernels are registered yet)
        max_seqs, budget = rocm_batch_defaults(arch)
        return Capabilities(
            dtypes=("bfloat16", "float16", "float32"),
            kv_cache_dtypes=("bfloat16", "float16", "float32"),
            graph_modes=GRAPH_MODES,
            distributed_backend="nccl",  # RCCL answers to the nccl backend on ROCm torch
            features=frozenset(features),
            info={"device": self._device.device_name(), "arch": arch, "hip": str(torch.version.hip),
                  "verified": "not run on AMD hardware"},
            default_max_num_seqs=max_seqs,
            default_max_num_batched_tokens=budget,
        )

    def configure(self, config):
        return rocm_config_patch(config, self._device.gcn_arch(), self._backends[0].supported_block_sizes)

    def attention_backends(self):
        return self._backends

    def kernels(self) -> KernelRegistry:
        from plinth_triton import register_kernels

        registry = KernelRegistry()
        register_kernels(registry, device_types=("cuda",))  # HIP tensors report device type "cuda"
        return registry

    def graph_runner(self, config) -> GraphRunner:
        if config.graph.mode == "hip_graph":
            return StreamGraphRunner(torch.cuda, torch.cuda.CUDAGraph, mode="hip_graph")
        return EagerGraphRunner()
