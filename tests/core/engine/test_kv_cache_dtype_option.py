"""``LLM(kv_cache_dtype=...)``: a dtype the platform does not offer is refused before any weight loads."""

from __future__ import annotations

import pytest

from plinth import LLM
from plinth.config import ConfigError
from tests.e2e.conftest import save_tiny_model

pytest.importorskip("plinth_cpu", reason="these tests run on the cpu platform")


def test_a_kv_cache_dtype_the_platform_lacks_is_refused_clearly(tmp_path):
    path = save_tiny_model("llama", tmp_path)
    with pytest.raises(ValueError, match="kv_cache_dtype 'fp8_e4m3' is not offered by the 'cpu' platform.*auto"):
        LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, kv_cache_dtype="fp8")
    with pytest.raises(ConfigError, match="kv_cache_dtype 'fp4'"):
        LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, kv_cache_dtype="fp4")


def test_a_float_kv_cache_dtype_is_stored(tmp_path):
    path = save_tiny_model("llama", tmp_path)
    llm = LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, kv_cache_dtype="bfloat16",
              max_num_seqs=2, max_num_batched_tokens=64)
    import torch

    assert llm.llm_engine.runner.kv_caches[0].dtype == torch.bfloat16
