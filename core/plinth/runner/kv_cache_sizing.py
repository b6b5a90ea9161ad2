"""How many KV-cache blocks fit, and allocating them in the backend's layout."""

from __future__ import annotations

import math

import torch

from plinth.config import ConfigError, EngineConfig
from plinth.platform import AttentionBackend, DeviceOps, KVCacheSpec


def num_kv_blocks(
    config: EngineConfig, specs: list[KVCacheSpec], element_size: int, device: DeviceOps, max_model_len: int
) -> int:
    """Blocks for the whole model: override, else the budget divided by the bytes per block.

    The budget is ``cache.kv_cache_memory_bytes`` when set, else
    ``gpu_memory_utilization * total - (total - free)`` measured after the weights loaded and,
    on platforms with ``Feature.PROFILE_RUN``, after the profile run (so it counts peak activations).
    Never more than the scheduler could ever use (``max_num_seqs`` full-length sequences).
    """
    cache, sched = config.cache, config.scheduler
    if cache.num_gpu_blocks_override is not None:
        return cache.num_gpu_blocks_override
    bytes_per_block = sum(spec.bytes_per_block(element_size) for spec in specs)
    if cache.kv_cache_memory_bytes is not None:
        budget = cache.kv_cache_memory_bytes
    else:
        total, free = device.total_memory(), device.free_memory()
        budget = int(cache.gpu_memory_utilization * total) - (total - free)
    blocks = budget // bytes_per_block
    needed = sched.max_num_seqs * math.ceil(max_model_len / cache.block_size)
    min_blocks = math.ceil(max_model_len / cache.block_size)
    if blocks < min_blocks:
        raise ConfigError(
            f"the KV cache fits {max(blocks, 0)} blocks of {cache.block_size} tokens "
            f"({bytes_per_block} bytes each, budget {budget / 2**30:.2f} GiB), but one sequence of "
            f"max_model_len={max_model_len} needs {min_blocks}: lower max_model_len, raise "
            f"gpu_memory_utilization / kv_cache_memory_bytes, or use a smaller dtype")
    return int(min(blocks, needed))


def allocate_kv_caches(
    backend: AttentionBackend, specs: list[KVCacheSpec], num_blocks: int, dtype: torch.dtype, device: torch.device
) -> list[torch.Tensor]:
    """One cache tensor per layer in the backend's layout, uninitialised.

    Not zeroed (zeroing gigabytes of host memory takes seconds): the contract requires
    backends never to let a slot that was not written affect a result.
    """
    return [
        torch.empty(backend.kv_cache_shape(num_blocks, s.block_size, s.num_kv_heads, s.head_size),
                    dtype=dtype, device=device)
        for s in specs
    ]
