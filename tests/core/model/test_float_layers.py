"""The layers a checkpoint keeps in float, matched as vLLM matches them, and the per-layer method they get."""

from __future__ import annotations

import pytest
import torch

from plinth.model.build_context import BuildContext
from plinth.model.float_layers import FloatLayers
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry
from plinth.platform.linear_method import UNQUANTIZED, TorchLinearMethod

LAYER = "model.layers.1"


def test_names_match_the_whole_prefix_and_patterns_match_from_its_start():
    kept = FloatLayers(("model.layers.1.mlp.down_proj", "re:.*self_attn\\.o_proj$", "lm_head"), "ignore")
    assert kept.keeps("model.layers.1.mlp.down_proj") and kept.keeps("lm_head")
    assert not kept.keeps("model.layers.11.mlp.down_proj") and not kept.keeps("layers.1.mlp.down_proj")
    assert kept.keeps("model.layers.0.self_attn.o_proj") and kept.keeps("model.layers.7.self_attn.o_proj")
    assert not kept.keeps("model.layers.0.self_attn.o_proj_x") and not kept.keeps("model.layers.0.mlp.up_proj")


def test_a_fused_layer_is_judged_by_its_shards_which_must_agree():
    qkv = [f"{LAYER}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")]
    assert FloatLayers(tuple(qkv), "ignored_layers").keeps(f"{LAYER}.self_attn.qkv_proj")
    assert FloatLayers(("re:.*layers\\.1\\.mlp\\.(gate|up)_proj",), "ignore").keeps(f"{LAYER}.mlp.gate_up_proj")
    assert not FloatLayers(("model.layers.0.self_attn.q_proj",), "x").keeps(f"{LAYER}.self_attn.qkv_proj")
    mixed = FloatLayers((f"{LAYER}.self_attn.k_proj",), "quantization_config.ignored_layers")
    with pytest.raises(ValueError, match=r"ignored_layers keeps model\.layers\.1\.self_attn\.k_proj in float but "
                                         r"not .*q_proj, .*v_proj.*all of its shards must be listed or none"):
        mixed.keeps(f"{LAYER}.self_attn.qkv_proj")


def test_a_kept_layer_takes_the_unquantized_method_and_the_others_the_quantization():
    class Fp8(TorchLinearMethod):
        name, quantizes_lm_head = "fp8", True

    plain, fp8 = TorchLinearMethod(), Fp8()
    ctx = BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.float32, torch.device("cpu"),
                       linear_methods={UNQUANTIZED: plain, "fp8": fp8}, quantization="fp8",
                       float_layers=FloatLayers((f"{LAYER}.mlp.down_proj", "lm_head"), "ignored_layers"))
    assert ctx.linear_method(f"{LAYER}.mlp.down_proj") is plain and ctx.lm_head_method("lm_head") is plain
    assert ctx.linear_method("model.layers.0.mlp.down_proj") is fp8 and ctx.linear_method() is fp8
    assert ctx.lm_head_method() is fp8  # a head not listed takes a method that quantizes heads


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "qwen3"])
def test_every_linear_layer_is_built_with_its_module_name_and_get_model_checks_it(arch, monkeypatch):
    from plinth.model.layers.linear import LinearBase
    from plinth.model.loader import get_model
    from plinth.model.model_config import ModelConfig
    from plinth.model.registry import model_registry
    from tests.core.model.conftest import tiny_config

    hf_config = tiny_config(arch, architectures=[f"{tiny_config(arch).__class__.__name__[:-6]}ForCausalLM"])
    ctx = BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.float32, torch.device("cpu"),
                       block_size=8, float_layers=FloatLayers(("lm_head",), "ignore"))
    model = model_registry().resolve(hf_config.architectures)(hf_config, ctx)
    linears = {name: m.prefix for name, m in model.named_modules() if isinstance(m, LinearBase)}
    assert len(linears) == 8 and all(name == prefix for name, prefix in linears.items())

    config = ModelConfig("tiny", hf_config, torch.float32, 64, hf_config.architectures[0], (), "dummy")
    monkeypatch.setattr(LinearBase, "__init__", _without_prefix(LinearBase.__init__))
    with pytest.raises(ValueError, match=r"builds its linear layer model\.layers\.0\.self_attn\.qkv_proj with "
                                         r"prefix ''; .*pass prefix='model\.layers\.0\.self_attn\.qkv_proj'"):
        get_model(config, ctx)


def _without_prefix(init):
    """A model built by code that passes its linear layers no prefix."""
    def build(self, *args, **kw):
        init(self, *args, **kw)
        self.prefix = ""
    return build
