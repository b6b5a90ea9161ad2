"""The typed engine configuration, passed down explicitly (no globals, few env vars)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


class ConfigError(ValueError):
    """The configuration cannot work; the message says which option to change."""


@dataclass(frozen=True)
class CacheConfig:
    block_size: int = 16  # tokens per KV-cache block
    enable_prefix_caching: bool = True  # automatic prefix caching, on by default as in vLLM V1
    num_gpu_blocks_override: int | None = None  # force the block count (tests, tuning), any platform
    gpu_memory_utilization: float = 0.9  # fraction of device memory the engine may use (accelerators)
    kv_cache_memory_bytes: int | None = None  # explicit KV budget in bytes; None = from free device memory
    kv_cache_dtype: str = "auto"  # one of KV_CACHE_DTYPES; "auto" = the model dtype

    def __post_init__(self) -> None:
        name = KV_CACHE_DTYPE_ALIASES.get(self.kv_cache_dtype, self.kv_cache_dtype)
        if name not in KV_CACHE_DTYPES:
            raise ConfigError(f"kv_cache_dtype {self.kv_cache_dtype!r} is not one of "
                              f"{', '.join(map(repr, KV_CACHE_DTYPES + tuple(KV_CACHE_DTYPE_ALIASES)))}")
        object.__setattr__(self, "kv_cache_dtype", name)


#: KV-cache storage dtypes by name (vLLM's ``--kv-cache-dtype``): ``auto`` is the model dtype; the fp8
#: formats store keys and values in one byte, saturated to the format's range, with a scale of 1.0.
KV_CACHE_DTYPES = ("auto", "bfloat16", "float16", "float32", "fp8_e4m3", "fp8_e5m2")
KV_CACHE_DTYPE_ALIASES = {"fp8": "fp8_e4m3", "half": "float16", "float": "float32"}


def kv_storage_dtype(name: str, model_dtype):
    """The torch dtype the KV cache stores for ``name`` (``"auto"`` = ``model_dtype``)."""
    import torch

    name = KV_CACHE_DTYPE_ALIASES.get(name, name)
    if name == "auto":
        return model_dtype
    return {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}.get(name) or getattr(torch, name)


ADMISSION_RULES = ("forecast", "greedy")  # SchedulerConfig.admission


#: step limits where neither the user nor the platform (``Capabilities.default_max_num_seqs`` / ``_batched_tokens``)
#: sets one: vLLM's defaults for GPUs under 70 GiB
CORE_MAX_NUM_SEQS = 256
CORE_MAX_NUM_BATCHED_TOKENS = 8192


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_seqs: int = CORE_MAX_NUM_SEQS  # requests in one step
    max_num_batched_tokens: int = CORE_MAX_NUM_BATCHED_TOKENS  # tokens (prefill + decode) in one step
    max_model_len: int | None = None  # None = from the model config
    enable_chunked_prefill: bool = True  # split long prompts over steps
    policy: str = "fcfs"  # "fcfs" or "priority"
    admission: str = "forecast"  # one of ADMISSION_RULES: "forecast" (projected KV growth fits), "greedy" (vLLM's)


@dataclass(frozen=True)
class GraphConfig:
    mode: str = "auto"  # "auto" = the platform's preferred mode, "eager" = never capture
    capture_sizes: tuple[int, ...] = ()  # decode batch sizes to capture; () = platform default


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs; platforms may only change it through a ConfigPatch."""

    model: str | None = None
    dtype: str = "auto"
    seed: int = 0
    load_format: str = "auto"
    quantization: str | None = None  # a linear method the platform offers (quantization_methods()); None = float
    cache: CacheConfig = field(default_factory=CacheConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)

    def with_section(self, name: str, **changes) -> EngineConfig:
        section = getattr(self, name)
        known = {f.name for f in fields(section)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown {name} option(s): {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **{name: replace(section, **changes)})
