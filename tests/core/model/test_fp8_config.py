"""Reading an fp8 checkpoint's quantization_config: format, block size, activations, layers kept in float."""

from __future__ import annotations

import pytest
import transformers

from plinth.model.loader.fp8_config import block_size, float_layers, fp8_checkpoint, quantizes_activations


def config(quant: dict | None) -> transformers.LlamaConfig:
    cfg = transformers.LlamaConfig()
    if quant is not None:
        cfg.quantization_config = quant
    return cfg


def compressed_tensors(weights: dict, activations: dict | None = None, **extra) -> dict:
    return {"quant_method": "compressed-tensors", "format": "float-quantized", **extra,
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"type": "float", "num_bits": 8, **weights},
                                          "input_activations": activations}}}


def test_fp8_checkpoint_configs():
    assert not fp8_checkpoint(config(None))
    assert fp8_checkpoint(config({"quant_method": "fp8", "activation_scheme": "dynamic"}))
    assert fp8_checkpoint(config({"quant_method": "fbgemm_fp8", "modules_to_not_convert": ["lm_head"]}))
    assert fp8_checkpoint(config(compressed_tensors({"strategy": "channel"})))
    assert not fp8_checkpoint(config({"quant_method": "compressed-tensors", "format": "pack-quantized",
                                      "config_groups": {"g": {"weights": {"type": "int", "num_bits": 4}}}}))
    assert not fp8_checkpoint(config({"quant_method": "awq"}))


def test_block_size_from_weight_block_size_or_a_compressed_tensors_block_structure():
    assert block_size(config({"quant_method": "fp8", "weight_block_size": [128, 64]})) == (128, 64)
    assert block_size(config(compressed_tensors({"strategy": "block", "block_structure": [128, 64]}))) == (128, 64)
    assert block_size(config(compressed_tensors({"strategy": "block", "block_structure": "128x64"}))) == (128, 64)
    assert block_size(config(compressed_tensors({"strategy": "channel"}))) is None
    with pytest.raises(ValueError, match="strategy 'block' need block_structure"):
        block_size(config(compressed_tensors({"strategy": "block"})))


def test_weight_only_compressed_tensors_groups_do_not_quantize_activations():
    token = {"type": "float", "num_bits": 8, "strategy": "token", "dynamic": True}
    assert quantizes_activations(config(compressed_tensors({"strategy": "channel"}, token)))
    assert not quantizes_activations(config(compressed_tensors({"strategy": "channel"})))
    assert quantizes_activations(config({"quant_method": "fp8", "activation_scheme": "dynamic"}))


def test_float_layers_from_each_format_s_list():
    down = "model.layers.0.mlp.down_proj"
    kept = float_layers(config({"quant_method": "fp8", "ignored_layers": [down]}))
    assert kept.entries == (down,) and kept.source == "quantization_config.ignored_layers"
    assert float_layers(config({"quant_method": "fbgemm_fp8", "modules_to_not_convert": ["lm_head"]})).keeps("lm_head")
    kept = float_layers(config(compressed_tensors({"strategy": "tensor"}, ignore=["lm_head", "re:.*down_proj"])))
    assert kept.keeps(down) and kept.keeps("lm_head") and not kept.keeps("model.layers.0.self_attn.o_proj")
    assert float_layers(config({"quant_method": "fp8"})) is None
    assert float_layers(config({"quant_method": "awq", "modules_to_not_convert": ["lm_head"]})) is None
