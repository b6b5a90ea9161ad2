"""The CPU platform: composition of device ops, capabilities, configuration and attention."""

from __future__ import annotations

from functools import cached_property

import torch

from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform import Capabilities, ConfigPatch, Feature, KernelRegistry, Platform
from plinth_cpu.attention import CpuAttentionBackend
from plinth_cpu.device import CpuDeviceOps
from plinth_cpu.extension import extension
from plinth_cpu.gemv import GemvBf16Linear, native_bf16
from plinth_cpu.ggml_linear import GGMLLinear
from plinth_cpu.host_memory import keep_freed_memory
from plinth_cpu.isa import detect
from plinth_cpu.kernels import CsrcOps, build_registry
from plinth_cpu.linear import OneDnnPackedLinear
from plinth_cpu.quantization import Int8WeightOnly
from plinth_cpu.w8a8 import W8A8Int8


class CpuPlatform(Platform):
    name = "cpu"

    def __init__(self) -> None:
        self._device = CpuDeviceOps()
        self._extension = extension()
        csrc = CsrcOps(self._extension.module) if self._extension.module is not None else None
        torch_only = (CpuAttentionBackend(), ReferenceAttentionBackend())
        self._backends = (CpuAttentionBackend(csrc), *torch_only) if csrc is not None else torch_only

    @property
    def device(self) -> CpuDeviceOps:
        return self._device

    @cached_property
    def capabilities(self) -> Capabilities:
        info = detect()
        native_bf16 = "avx512_bf16" in info.extensions or "amx_bf16" in info.extensions
        dtypes = ("bfloat16", "float32", "float16") if native_bf16 else ("float32", "bfloat16", "float16")
        return Capabilities(
            dtypes=dtypes,
            kv_cache_dtypes=("float32", "bfloat16", "float16"),
            graph_modes=("eager",),
            distributed_backend="gloo",
            features=frozenset({Feature.PREFIX_CACHING, Feature.CHUNKED_PREFILL}),
            info={"isa": info.isa, "extensions": ",".join(info.extensions) or "-", "cores": str(info.cores),
                  "kernels": self._extension.describe},
        )

    def configure(self, config) -> ConfigPatch:
        errors = []
        if config.graph.mode not in ("auto", "eager"):
            errors.append(f"graph mode {config.graph.mode!r} is not available on cpu; use 'eager'")
        # Big token budgets only add latency on a few cores; vLLM's CPU default is similar.
        budget = min(config.scheduler.max_num_batched_tokens, 4096)
        # Host memory is shared with everything else: a bounded KV budget, as vLLM's CPU build.
        kv_bytes = min(4 * 2**30, self.device.free_memory() // 4)
        return ConfigPatch(graph_mode="eager", max_num_batched_tokens=budget, kv_cache_memory_bytes=kv_bytes,
                           errors=tuple(errors))

    def attention_backends(self):
        return self._backends

    def quantization_methods(self):
        """Linear methods: float weights (``"unquantized"``) pair-blocked for the csrc ``gemv_bf16``
        kernel where it has native bf16 dot products, GGUF's Q8_0/Q4_0/Q4_1 weights kept in their
        blocks for ``ggml_linear`` there too, else pre-packed for oneDNN; with the C++
        extension, int8 weight-only linears (``"int8_weight_only"``) and int8 weights with int8
        per-token activations (``"w8a8_int8"``, VNNI dot products where the CPU has them)."""
        unquantized = OneDnnPackedLinear()
        if native_bf16(self._extension.module):
            unquantized = GGMLLinear(self._extension.module, GemvBf16Linear(self._extension.module, unquantized))
        methods = {unquantized.name: unquantized}
        if self._extension.module is not None:
            methods[Int8WeightOnly.name] = Int8WeightOnly(self._extension.module)
            methods[W8A8Int8.name] = W8A8Int8(self._extension.module)
        return methods

    def kernels(self) -> KernelRegistry:
        """The csrc kernels on the active ISA path (empty with PLINTH_CPU_KERNELS=reference)."""
        return build_registry(self._extension.module, self._extension.isa)

    def setup_process(self) -> None:
        keep_freed_memory()
        cores = detect().cores
        if torch.get_num_threads() > cores:
            torch.set_num_threads(cores)
