"""Kernel registry resolution and config-patch validation."""

from __future__ import annotations

import pytest

from plinth.config import ConfigError, EngineConfig
from plinth.ops import reference
from plinth.platform import ConfigPatch, KernelRegistry, Op
from plinth.platform.configure import apply_config_patch


def test_registry_falls_back_to_reference():
    assert KernelRegistry().resolve(Op.RMS_NORM) is reference.rms_norm


def test_registry_prefers_priority_among_supporting():
    reg = KernelRegistry()
    reg.register(Op.SILU_AND_MUL, lambda x: "low", priority=1)
    reg.register(Op.SILU_AND_MUL, lambda x: "high", priority=5, supports=lambda t: t.get("dtype") == "bfloat16")
    assert reg.resolve(Op.SILU_AND_MUL, dtype="bfloat16")(None) == "high"
    assert reg.resolve(Op.SILU_AND_MUL, dtype="float32")(None) == "low"


def test_registry_rejects_unknown_op_and_missing_reference():
    reg = KernelRegistry()
    with pytest.raises(ValueError, match="unknown op"):
        reg.register("softmax_magic", lambda x: x)
    with pytest.raises(LookupError, match="no reference"):
        reg.resolve(Op.FUSED_MOE)


def test_patch_applies_and_validates():
    config = apply_config_patch(EngineConfig(), ConfigPatch(block_size=32, max_num_seqs=8, graph_mode="eager"), "x")
    assert (config.cache.block_size, config.scheduler.max_num_seqs, config.graph.mode) == (32, 8, "eager")
    with pytest.raises(ConfigError, match="platform 'x' cannot run this config: no fp64"):
        apply_config_patch(EngineConfig(), ConfigPatch(errors=("no fp64",)), "x")
    with pytest.raises(ConfigError, match="invalid block_size=0"):
        apply_config_patch(EngineConfig(), ConfigPatch(block_size=0), "x")


def test_user_graph_mode_is_kept():
    user = EngineConfig().with_section("graph", mode="eager")
    assert apply_config_patch(user, ConfigPatch(graph_mode="cuda_graph"), "x").graph.mode == "eager"
