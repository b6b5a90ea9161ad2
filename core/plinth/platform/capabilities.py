"""Declared capabilities: core gates features on these, never on a platform's name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class Feature:
    """Names of optional engine features a platform may declare."""

    PREFIX_CACHING = "prefix_caching"
    CHUNKED_PREFILL = "chunked_prefill"
    SPECULATIVE_DECODING = "speculative_decoding"
    LORA = "lora"
    STRUCTURED_OUTPUT = "structured_output"
    FP8 = "fp8"
    ASYNC_SCHEDULING = "async_scheduling"  # overlapping the next step's scheduling with this one pays off
    # (API 1.2) run dummy steps at every step shape before sizing the KV cache: kernels that compile on
    # first use (e.g. Triton JIT) compile at start-up, and, with a caching allocator whose reserved
    # memory counts as used in free_memory(), the KV budget leaves room for peak activations. For
    # platforms with dynamic shapes; a static-shapes platform precompiles its buckets in capture().
    PROFILE_RUN = "profile_run"


@dataclass(frozen=True)
class Capabilities:
    dtypes: tuple[str, ...]  # model dtypes the platform computes in, e.g. ("bfloat16", "float32")
    kv_cache_dtypes: tuple[str, ...]  # KV-cache storage dtypes besides "auto"
    graph_modes: tuple[str, ...] = ("eager",)  # e.g. "eager", "cuda_graph", "compiled"
    distributed_backend: str | None = None  # torch.distributed backend: "gloo", "nccl", "xla", ...
    features: frozenset[str] = frozenset()  # Feature names the platform supports
    info: Mapping[str, str] = field(default_factory=dict)  # shown by `plinth platforms` (isa, sm, ...)
    # (API 1.6) step limits where the user sets none, as vLLM picks them by device (e.g. 1,024 requests and
    # 16,384 tokens a step on GPUs of 70+ GiB); None leaves core's: CORE_MAX_NUM_SEQS, CORE_MAX_NUM_BATCHED_TOKENS
    default_max_num_seqs: int | None = None
    default_max_num_batched_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("default_max_num_seqs", "default_max_num_batched_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"Capabilities.{name} must be a positive int or None, got {value!r}")

    def supports(self, feature: str) -> bool:
        return feature in self.features

    @property
    def default_dtype(self) -> str:
        """The first declared dtype: the platform's preferred compute dtype."""
        return self.dtypes[0]
