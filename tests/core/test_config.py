"""Engine configuration values: the KV-cache dtype names."""

from __future__ import annotations

import pytest
import torch

from plinth.config import KV_CACHE_DTYPES, CacheConfig, ConfigError, kv_storage_dtype


@pytest.mark.parametrize(("name", "canonical", "stored"), [
    ("auto", "auto", torch.bfloat16), ("fp8", "fp8_e4m3", torch.float8_e4m3fn),
    ("fp8_e4m3", "fp8_e4m3", torch.float8_e4m3fn), ("fp8_e5m2", "fp8_e5m2", torch.float8_e5m2),
    ("float16", "float16", torch.float16), ("half", "float16", torch.float16), ("float32", "float32", torch.float32),
])
def test_kv_cache_dtype_names(name, canonical, stored):
    assert CacheConfig(kv_cache_dtype=name).kv_cache_dtype == canonical
    assert kv_storage_dtype(name, torch.bfloat16) == stored


def test_unknown_kv_cache_dtype_names_the_choices():
    with pytest.raises(ConfigError, match="kv_cache_dtype 'int4'.*'fp8_e4m3'.*'fp8'"):
        CacheConfig(kv_cache_dtype="int4")
    assert set(KV_CACHE_DTYPES) >= {"auto", "bfloat16", "fp8_e4m3", "fp8_e5m2"}
