"""Step limits the user leaves unset take the platform's defaults (``Capabilities``, API 1.6), then core's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plinth import LLM
from plinth.config import CORE_MAX_NUM_BATCHED_TOKENS, CORE_MAX_NUM_SEQS
from plinth.engine.engine_args import EngineArgs
from plinth.platform import Capabilities
from tests.e2e.conftest import save_tiny_model


@pytest.mark.parametrize("user,platform,expected", [
    ((None, None), (None, None), (CORE_MAX_NUM_SEQS, CORE_MAX_NUM_BATCHED_TOKENS)),
    ((None, None), (1024, 16384), (1024, 16384)),
    ((64, None), (1024, 16384), (64, 16384)),
    ((None, 2048), (1024, 16384), (1024, 2048)),
    ((8, 512), (None, None), (8, 512)),
])
def test_unset_limits_take_the_platform_default_then_core(user, platform, expected):
    args = EngineArgs(max_num_seqs=user[0], max_num_batched_tokens=user[1])
    sched = args.engine_config(4096, *platform).scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == expected


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "1024"])
def test_a_platform_default_that_is_not_a_positive_int_is_refused(bad):
    with pytest.raises(ValueError, match="default_max_num_seqs must be a positive int"):
        Capabilities(dtypes=("float32",), kv_cache_dtypes=(), default_max_num_seqs=bad)


def test_the_engine_applies_the_platform_defaults(tmp_path, monkeypatch):
    """On the cpu platform with defaults of 3 requests and 96 tokens: an unset limit takes them, a set one stays."""
    cpu = pytest.importorskip("plinth_cpu.platform")
    original = cpu.CpuPlatform.capabilities.func
    monkeypatch.setattr(cpu.CpuPlatform, "capabilities", property(
        lambda self: replace(original(self), default_max_num_seqs=3, default_max_num_batched_tokens=96)))
    path = save_tiny_model("llama", tmp_path)
    llm = LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True)
    sched = llm.llm_engine.config.scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == (3, 96)
    out = llm.generate([{"prompt_token_ids": [1, 2, 3]}] * 5)  # more requests than one step takes
    assert len(out) == 5 and all(o.outputs[0].token_ids for o in out)
    llm = LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, max_num_seqs=5,
              max_num_batched_tokens=64)
    sched = llm.llm_engine.config.scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == (5, 64)


def test_user_capture_sizes_replace_the_platforms_ladder():
    from plinth.config import ConfigError, EngineConfig
    from plinth.platform import ConfigPatch
    from plinth.platform.configure import apply_config_patch

    config = EngineArgs(cuda_graph_sizes=[4, 1, 16, 4]).engine_config(4096)
    assert config.graph.capture_sizes == (16, 4, 1)
    patched = apply_config_patch(config, ConfigPatch(capture_sizes=(1, 2, 8, 512)), "x")
    assert patched.graph.capture_sizes == (16, 4, 1)  # the user's, not the platform's
    assert apply_config_patch(EngineConfig(), ConfigPatch(capture_sizes=(1, 8)), "x").graph.capture_sizes == (8, 1)
    with pytest.raises(ConfigError, match="cuda_graph_sizes must be positive"):
        EngineArgs(cuda_graph_sizes=[8, 0]).engine_config(4096)
