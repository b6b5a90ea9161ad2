"""The TPU platform: PJRT device ops, capabilities, bucketed config, XLA attention and compilation."""

from __future__ import annotations

import importlib.util
import logging
from functools import cached_property

from plinth.platform import Capabilities, ConfigPatch, EagerGraphRunner, Feature, GraphRunner, Platform
from plinth_tpu.attention import BLOCK_SIZES, DTYPES, XlaAttentionBackend
from plinth_tpu.buckets import ladder
from plinth_tpu.device import XlaDeviceOps

logger = logging.getLogger(__name__)

GRAPH_MODES = ("compiled", "eager")
#: step token budget on XLA:CPU: each bucket compiles once at start-up, and big ones cost minutes there
#: (SmolLM2-135M on 2 cores: bucket 256 ~50 s, bucket 512 ~190 s)
CPU_MAX_BATCHED_TOKENS = 128
#: requests a step on XLA:CPU: every step samples this many (padded) logits rows
CPU_MAX_NUM_SEQS = 16
#: KV budget on XLA:CPU, whose memory is the host's
CPU_KV_BYTES = 1 << 30


def pallas_available() -> bool:
    """torch_xla's Pallas kernels need a TPU and JAX."""
    return importlib.util.find_spec("jax") is not None


def token_buckets(config) -> tuple[int, ...]:
    """The padded token counts a step compiles for: powers of two up to the step budget."""
    return ladder(config.scheduler.max_num_batched_tokens)


class TpuPlatform(Platform):
    name = "tpu"

    def __init__(self) -> None:
        self._device = XlaDeviceOps()
        self._on_tpu = self._device.hardware() == "TPU"
        xla = XlaAttentionBackend()
        self._backends = (XlaAttentionBackend(use_pallas=True), xla) if self._on_tpu and pallas_available() else (xla,)

    @property
    def device(self) -> XlaDeviceOps:
        return self._device

    @cached_property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            dtypes=DTYPES if self._on_tpu else DTYPES[::-1],  # bf16 is native on TPU; fp32 on XLA:CPU
            kv_cache_dtypes=DTYPES,
            graph_modes=GRAPH_MODES,
            distributed_backend="xla",
            features=frozenset({Feature.PREFIX_CACHING, Feature.CHUNKED_PREFILL}),
            info={"pjrt": self._device.hardware(), "device": self._device.device_name(),
                  "attention": ", ".join(b.name for b in self._backends)},
        )

    def configure(self, config) -> ConfigPatch:
        """Block size the backends support, a bounded step budget (buckets), bucketed capture sizes."""
        errors = []
        if config.graph.mode not in ("auto", *GRAPH_MODES):
            errors.append(f"graph mode {config.graph.mode!r} is not available on tpu; use one of {GRAPH_MODES}")
        if config.dtype not in ("auto", *DTYPES):
            errors.append(f"dtype {config.dtype!r} is not supported on tpu; use one of {DTYPES}")
        block_size = None if config.cache.block_size in BLOCK_SIZES else 16
        budget, max_seqs = config.scheduler.max_num_batched_tokens, config.scheduler.max_num_seqs
        if not self._on_tpu and (budget > CPU_MAX_BATCHED_TOKENS or max_seqs > CPU_MAX_NUM_SEQS):
            budget, max_seqs = min(budget, CPU_MAX_BATCHED_TOKENS), min(max_seqs, CPU_MAX_NUM_SEQS)
            logger.info("XLA:CPU: at most %d tokens and %d requests a step (every step is padded to them)",
                        budget, max_seqs)
        buckets = ladder(budget)
        sizes = tuple(s for s in buckets if s <= max_seqs)
        kv_bytes = None if self._on_tpu else min(CPU_KV_BYTES, self._device.free_memory() // 8)
        return ConfigPatch(
            block_size=block_size, max_num_seqs=max_seqs, max_num_batched_tokens=budget, graph_mode="compiled",
            capture_sizes=sizes or buckets[:1], dtype=self.capabilities.default_dtype,
            kv_cache_memory_bytes=kv_bytes, errors=tuple(errors))

    def attention_backends(self):
        return self._backends

    def graph_runner(self, config) -> GraphRunner:
        if config.graph.mode == "eager":
            logger.warning("graph mode 'eager' on XLA compiles every new batch shape; use 'compiled'")
            return EagerGraphRunner()
        from plinth_tpu.graph_runner import XlaGraphRunner

        return XlaGraphRunner(token_buckets(config), config.scheduler.max_num_seqs)

    def inference_mode(self):
        """torch-xla 2.9 breaks on views of persistent buffers in inference mode: no_grad instead."""
        import torch

        return torch.no_grad()
