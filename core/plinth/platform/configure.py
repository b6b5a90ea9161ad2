"""Declarative configuration patches: platforms propose, core validates and applies."""

from __future__ import annotations

from dataclasses import dataclass

from plinth.config import ConfigError, EngineConfig


@dataclass(frozen=True)
class ConfigPatch:
    """Changes a platform asks for, given the config it was shown; ``None`` = no change.

    A platform never mutates the config itself: it returns this, core checks it.
    """

    block_size: int | None = None  # KV-cache block size the attention backend wants
    max_num_seqs: int | None = None  # cap on requests per step
    max_num_batched_tokens: int | None = None  # cap on tokens per step
    graph_mode: str | None = None  # one of the platform's declared graph modes
    capture_sizes: tuple[int, ...] | None = None  # decode batch sizes to capture
    dtype: str | None = None  # compute dtype when the user said "auto"
    kv_cache_memory_bytes: int | None = None  # KV budget when the user gave none (hosts without a device pool)
    errors: tuple[str, ...] = ()  # reasons the config cannot run on this platform


def apply_config_patch(config: EngineConfig, patch: ConfigPatch, platform_name: str) -> EngineConfig:
    """Validate ``patch`` and return the patched config, or raise ConfigError."""
    if patch.errors:
        raise ConfigError(f"platform '{platform_name}' cannot run this config: " + "; ".join(patch.errors))
    for name in ("block_size", "max_num_seqs", "max_num_batched_tokens"):
        value = getattr(patch, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"platform '{platform_name}' proposed invalid {name}={value!r}")
    if patch.block_size is not None:
        config = config.with_section("cache", block_size=patch.block_size)
    sched = {k: getattr(patch, k) for k in ("max_num_seqs", "max_num_batched_tokens")}
    sched = {k: v for k, v in sched.items() if v is not None}
    if sched:
        config = config.with_section("scheduler", **sched)
    graph = {}
    if patch.graph_mode is not None and config.graph.mode == "auto":
        graph["mode"] = patch.graph_mode
    if patch.capture_sizes is not None and not config.graph.capture_sizes:
        graph["capture_sizes"] = tuple(sorted(set(patch.capture_sizes), reverse=True))
    if graph:
        config = config.with_section("graph", **graph)
    if patch.kv_cache_memory_bytes is not None and config.cache.kv_cache_memory_bytes is None:
        config = config.with_section("cache", kv_cache_memory_bytes=patch.kv_cache_memory_bytes)
    if patch.dtype is not None and config.dtype == "auto":
        from dataclasses import replace

        config = replace(config, dtype=patch.dtype)
    return config
