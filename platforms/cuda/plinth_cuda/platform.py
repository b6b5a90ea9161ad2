"""The CUDA platform: device ops, capabilities, config patch, Triton kernels and CUDA graphs."""

from __future__ import annotations

import os
from functools import cached_property

import torch
from plinth_triton.attention_backend import FP8_KV_DTYPES, TritonAttentionBackend

from plinth.platform import Capabilities, ConfigPatch, Feature, GraphRunner, KernelRegistry, Platform, StreamGraphRunner
from plinth_cuda.device import CudaDeviceOps

#: decode batch sizes captured by default: vLLM's ladder (1, 2, 4, multiples of 8 below 256, of 16 up to 512), so a
#: replay pads a decode batch by at most 7 rows below 256 and 15 above (benchmarks/RESULTS.md CUDA round 16)
CAPTURE_SIZES = (1, 2, 4, *range(8, 256, 8), *range(256, 513, 16))
#: rows from which merged gate/up projections run as one GEMM with SiLU-and-mul fused (sm_90+); below it
#: cuBLAS and the pairwise SiLU-and-mul (benchmarks/bench_gemm_silu.py, RESULTS.md CUDA round 15)
GATED_MIN_ROWS = 2048
#: shared memory the fused kernel's plan needs on one SM (3 stages of 128 x 64 + 256 x 64 bf16 tiles and the
#: 128 x 128 output tile: 176 KB); sm_90 / sm_100 have 228 KB an SM, consumer Blackwell (sm_120) 100 KB
GATED_MIN_SHARED_MEMORY = 180 * 1024
#: rows from which the output and MLP-down projections add the residual inside cuBLAS's GEMM (beta = 1): the
#: next RMSNorm then reads one tensor and writes one instead of two each (benchmarks/RESULTS.md CUDA round 16);
#: ``PLINTH_GEMM_RESIDUAL=0`` turns it off
RESIDUAL_MIN_ROWS = 2048
#: vLLM's offline step limits on GPUs of 70+ GiB other than the A100 (H100, H200, B200): 1,024 requests and
#: 16,384 tokens a step where the user sets none; smaller GPUs keep core's 256 and 8,192
LARGE_GPU_MEMORY = 70 * 2**30
LARGE_GPU_MAX_NUM_SEQS, LARGE_GPU_MAX_NUM_BATCHED_TOKENS = 1024, 16384


class CudaPlatform(Platform):
    name = "cuda"

    def __init__(self) -> None:
        self._device = CudaDeviceOps()
        # the dense prefill kernel streams keys and values with tensor descriptors: Hopper's copy engine
        capability = self._device.compute_capability()
        hopper = capability[0] >= 9
        # fp8 KV: Ada and Hopper convert fp8 in registers (Triton's float8e4nv / float8e5)
        self._backends = (TritonAttentionBackend(num_sms=self._device.multiprocessor_count(),
                                                 dense_prefill=None if hopper else False,
                                                 fp8_kv=capability >= (8, 9)),)

    @property
    def device(self) -> CudaDeviceOps:
        return self._device

    @cached_property
    def capabilities(self) -> Capabilities:
        major, minor = self._device.compute_capability()
        dtypes = ("bfloat16", "float16", "float32") if major >= 8 else ("float16", "float32")
        kv_dtypes = ("bfloat16", "float16", "float32") + (FP8_KV_DTYPES if (major, minor) >= (8, 9) else ())
        # the host plans step N+1 while the GPU runs step N (Engine's async scheduling)
        features = {Feature.PREFIX_CACHING, Feature.CHUNKED_PREFILL, Feature.ASYNC_SCHEDULING,
                    Feature.PROFILE_RUN}
        if (major, minor) >= (8, 9):
            features.add(Feature.FP8)
        large = self._device.total_memory() >= LARGE_GPU_MEMORY and "a100" not in self._device.device_name().lower()
        return Capabilities(
            dtypes=dtypes,
            kv_cache_dtypes=kv_dtypes,
            graph_modes=("cuda_graph", "eager"),
            distributed_backend="nccl",
            features=frozenset(features),
            info={"device": self._device.device_name(), "sm": f"{major}{minor}",
                  "sms": str(self._device.multiprocessor_count()), "triton": _triton_version()},
            default_max_num_seqs=LARGE_GPU_MAX_NUM_SEQS if large else None,
            default_max_num_batched_tokens=LARGE_GPU_MAX_NUM_BATCHED_TOKENS if large else None,
        )

    def configure(self, config) -> ConfigPatch:
        errors = []
        mode = config.graph.mode
        if mode not in ("auto", "eager", "cuda_graph"):
            errors.append(f"graph mode {mode!r} is not available on cuda; use 'cuda_graph' or 'eager'")
        block_size = config.cache.block_size
        supported = self._backends[0].supported_block_sizes
        if block_size not in supported:
            block_size = 16
        max_seqs = config.scheduler.max_num_seqs
        sizes = tuple(s for s in CAPTURE_SIZES if s <= max_seqs)
        if max_seqs not in sizes and max_seqs <= 512:
            sizes = (*sizes, max_seqs)
        return ConfigPatch(block_size=block_size, graph_mode="cuda_graph" if mode == "auto" else None,
                           capture_sizes=sizes, errors=tuple(errors))

    def attention_backends(self):
        return self._backends

    def quantization_methods(self):
        """Float linears: a Triton GEMV for single-row inputs (batch-1 decode), cuBLAS otherwise, and on sm_90+
        merged gate/up projections of prefill-sized inputs (``GATED_MIN_ROWS`` rows or more) as one GEMM with
        SiLU-and-mul fused (``PLINTH_TRITON_GATED_SILU=0`` turns it off), and the residual added inside the GEMM of
        the output and MLP-down projections from ``RESIDUAL_MIN_ROWS`` rows (``PLINTH_GEMM_RESIDUAL=0`` turns it
        off); on sm_89+ also ``fp8`` (vLLM's
        ``--quantization fp8``: e4m3 weights per channel, e4m3 activations per token)."""
        from plinth_triton.gemv import GemvLinear

        fuse = (self._device.compute_capability() >= (9, 0) and self._device.shared_memory_per_sm() >= GATED_MIN_SHARED_MEMORY
                and os.environ.get("PLINTH_TRITON_GATED_SILU", "1") != "0")
        residual = os.environ.get("PLINTH_GEMM_RESIDUAL", "1") != "0"
        methods = {GemvLinear.name: GemvLinear(num_sms=self._device.multiprocessor_count(),
                                               gated_min_rows=GATED_MIN_ROWS if fuse else None,
                                               residual_min_rows=RESIDUAL_MIN_ROWS if residual else None)}
        if self._device.compute_capability() >= (8, 9):
            from plinth_triton.fp8_linear import Fp8Linear

            methods[Fp8Linear.name] = Fp8Linear()
        return methods

    def kernels(self) -> KernelRegistry:
        from plinth_triton import register_kernels

        registry = KernelRegistry()
        register_kernels(registry, device_types=("cuda",))
        return registry

    def graph_runner(self, config) -> GraphRunner:
        if config.graph.mode == "cuda_graph":
            return StreamGraphRunner(torch.cuda, torch.cuda.CUDAGraph, mode="cuda_graph")
        from plinth.platform import EagerGraphRunner

        return EagerGraphRunner()

    def setup_process(self) -> None:
        torch.backends.cuda.matmul.allow_tf32 = False


def _triton_version() -> str:
    try:
        import triton

        return triton.__version__
    except ImportError:
        return "missing"
