"""User-facing engine options (vLLM's names) turned into a typed EngineConfig."""

from __future__ import annotations

from dataclasses import dataclass, fields

from plinth.config import (
    CORE_MAX_NUM_BATCHED_TOKENS,
    CORE_MAX_NUM_SEQS,
    CacheConfig,
    ConfigError,
    EngineConfig,
    GraphConfig,
    SchedulerConfig,
)


@dataclass
class EngineArgs:
    model: str | None = None  # HF folder, hub id in the local cache, or .gguf; None = the default model
    device: str | None = None  # platform name; None = $PLINTH_DEVICE or the best available
    tokenizer: str | None = None  # tokenizer source when it differs from the model
    skip_tokenizer_init: bool = False  # no tokenizer: prompts must be token ids, outputs carry no text
    dtype: str = "auto"
    seed: int = 0
    load_format: str = "auto"  # "auto", "safetensors", "gguf", "dummy"
    max_model_len: int | None = None
    max_num_seqs: int | None = None  # None = the platform's default (Capabilities), else 256
    max_num_batched_tokens: int | None = None  # None = the platform's default, else 8192
    enable_chunked_prefill: bool = True
    scheduling_policy: str = "fcfs"
    admission: str = "forecast"  # "forecast": admit only if the KV forecast fits; "greedy": vLLM's
    block_size: int = 16
    enable_prefix_caching: bool = True
    num_gpu_blocks_override: int | None = None
    gpu_memory_utilization: float = 0.9
    kv_cache_memory_bytes: int | None = None
    kv_cache_dtype: str = "auto"
    enforce_eager: bool = False  # never capture device graphs
    cuda_graph_sizes: list[int] | None = None  # decode batch sizes to capture (vLLM's name); None = the platform's
    quantization: str | None = None  # e.g. "int8_weight_only" where the platform offers it

    @classmethod
    def from_kwargs(cls, **kwargs) -> EngineArgs:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown engine option(s) {unknown}; known options: {sorted(known)}")
        return cls(**kwargs)

    def engine_config(self, max_model_len: int, default_max_num_seqs: int | None = None,
                      default_max_num_batched_tokens: int | None = None) -> EngineConfig:
        """The typed config; step limits left None take the given defaults (the platform's), then core's."""
        max_num_seqs = _first_set(self.max_num_seqs, default_max_num_seqs, CORE_MAX_NUM_SEQS)
        max_num_batched_tokens = _first_set(self.max_num_batched_tokens, default_max_num_batched_tokens,
                                            CORE_MAX_NUM_BATCHED_TOKENS)
        return EngineConfig(
            model=self.model, dtype=self.dtype, seed=self.seed, load_format=self.load_format,
            quantization=self.quantization,
            cache=CacheConfig(
                block_size=self.block_size, enable_prefix_caching=self.enable_prefix_caching,
                num_gpu_blocks_override=self.num_gpu_blocks_override,
                gpu_memory_utilization=self.gpu_memory_utilization,
                kv_cache_memory_bytes=self.kv_cache_memory_bytes, kv_cache_dtype=self.kv_cache_dtype),
            scheduler=SchedulerConfig(
                max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                max_model_len=max_model_len, enable_chunked_prefill=self.enable_chunked_prefill,
                policy=self.scheduling_policy, admission=self.admission),
            graph=GraphConfig(mode="eager" if self.enforce_eager else "auto",
                              capture_sizes=_capture_sizes(self.cuda_graph_sizes)),
        )


def _first_set(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _capture_sizes(sizes) -> tuple[int, ...]:
    if not sizes:
        return ()
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
        raise ConfigError(f"cuda_graph_sizes must be positive batch sizes, got {list(sizes)!r}")
    return tuple(sorted(set(sizes), reverse=True))
