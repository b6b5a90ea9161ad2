"""configure(): a declarative patch that core can apply, leaving a config the platform can run."""

from __future__ import annotations

import pytest

from plinth.config import ConfigError, EngineConfig
from plinth.platform import AttentionSelector, ConfigPatch
from plinth.platform.configure import apply_config_patch


def _apply(platform, config: EngineConfig) -> EngineConfig:
    patch = platform.configure(config)
    assert isinstance(patch, ConfigPatch), f"configure must return a ConfigPatch, got {type(patch).__name__}"
    if patch.graph_mode is not None:
        assert patch.graph_mode in platform.capabilities.graph_modes, (
            f"patch asks for graph mode {patch.graph_mode!r}, not among declared graph_modes")
    if patch.dtype is not None:
        assert patch.dtype in platform.capabilities.dtypes, (
            f"patch asks for dtype {patch.dtype!r}, not among declared dtypes")
    return apply_config_patch(config, patch, platform.name)


def _check_block_size(platform, config: EngineConfig) -> None:
    dtype = config.dtype if config.dtype != "auto" else platform.capabilities.default_dtype
    block_size = config.cache.block_size
    selector = AttentionSelector(128, 32, 8, dtype, dtype, block_size)
    backend = platform.select_attention_backend(selector)  # raises, listing reasons, when none fits
    sizes = backend.supported_block_sizes
    assert not sizes or block_size in sizes, (
        f"configured block size {block_size} is not in backend {backend.name!r}'s {sizes}")


def test_default_config_runs(plinth_platform):
    config = EngineConfig()
    patched = _apply(plinth_platform, config)
    assert config == EngineConfig(), "configure must not mutate the config it is shown"
    _check_block_size(plinth_platform, patched)


def test_default_step_limits_run(plinth_platform):
    """The step limits the platform declares for users who set none (``Capabilities``, API 1.6) configure cleanly."""
    from plinth.engine.engine_args import EngineArgs

    caps = plinth_platform.capabilities
    config = EngineArgs().engine_config(2048, caps.default_max_num_seqs, caps.default_max_num_batched_tokens)
    patched = _apply(plinth_platform, config)
    assert patched.scheduler.max_num_seqs >= 1 and patched.scheduler.max_num_batched_tokens >= 1
    if patched.graph.capture_sizes:
        assert max(patched.graph.capture_sizes) <= patched.scheduler.max_num_seqs, (
            "capture sizes above the step's request limit would never replay")
    _check_block_size(plinth_platform, patched)


@pytest.mark.parametrize("block_size", [1, 16, 32, 64, 256, 48])
def test_any_block_size_is_fixed_or_refused(plinth_platform, block_size):
    """A user's block size is either patched to one a backend supports or refused with a reason."""
    config = EngineConfig().with_section("cache", block_size=block_size)
    try:
        patched = _apply(plinth_platform, config)
    except ConfigError as exc:
        assert str(exc).strip(), "a refusal must say why"
        return
    _check_block_size(plinth_platform, patched)
