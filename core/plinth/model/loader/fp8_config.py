"""What a checkpoint's ``quantization_config`` says about fp8: whether plinth reads it as an fp8 checkpoint,
the size of its scale blocks, whether it quantizes activations, and which layers it keeps in float."""

from __future__ import annotations

from typing import Any

from plinth.model.float_layers import FloatLayers

#: the fp8 formats ``fp8_checkpoint`` recognises, for messages
FP8_FORMATS = ("quant_method 'fp8' (AutoFP8, HF fine-grained), 'fbgemm_fp8', or 'compressed-tensors' with "
               "8-bit float weights (format 'float-quantized' or 'naive-quantized')")
#: the keys that list layers left in float: AutoFP8 / fp8, fbgemm_fp8 and HF configs, compressed-tensors
FLOAT_LAYER_KEYS = ("ignored_layers", "modules_to_not_convert", "ignore")


def quantization_config(hf_config: Any) -> dict:
    """``hf_config.quantization_config`` as a dict (empty when the config has none)."""
    quant = getattr(hf_config, "quantization_config", None)
    if quant is None:
        return {}
    return quant if isinstance(quant, dict) else getattr(quant, "to_dict", lambda: vars(quant))()


def fp8_checkpoint(hf_config: Any) -> bool:
    """Whether ``hf_config`` describes a checkpoint whose linears are stored in fp8."""
    quant = quantization_config(hf_config)
    method = quant.get("quant_method")
    if method == "compressed-tensors":
        return quant.get("format") in ("float-quantized", "naive-quantized") and bool(_float8_groups(quant))
    return method in ("fp8", "fbgemm_fp8")


def block_size(hf_config: Any) -> tuple[int, int] | None:
    """Rows and columns of a scale's block: ``weight_block_size`` (HF fine-grained), or the
    ``block_structure`` of a compressed-tensors group with ``strategy: "block"`` (``[bn, bk]`` or ``"bnxbk"``);
    None when the config gives neither."""
    quant = quantization_config(hf_config)
    block = quant.get("weight_block_size")
    if block:
        return int(block[0]), int(block[1])
    for group in _float8_groups(quant):
        weights = group["weights"]
        if weights.get("strategy") == "block":
            return _block_structure(weights.get("block_structure"))
    return None


def quantizes_activations(hf_config: Any) -> bool:
    """Whether the checkpoint's scheme quantizes activations too (W8A8). False for compressed-tensors
    checkpoints whose float8 groups have no ``input_activations`` (weight-only, W8A16)."""
    quant = quantization_config(hf_config)
    if quant.get("quant_method") != "compressed-tensors":
        return True
    return any(group.get("input_activations") for group in _float8_groups(quant))


def float_layers(hf_config: Any) -> FloatLayers | None:
    """The layers an fp8 checkpoint keeps in float (``FLOAT_LAYER_KEYS``), or None when it lists none."""
    if not fp8_checkpoint(hf_config):
        return None
    quant = quantization_config(hf_config)
    keys = [key for key in FLOAT_LAYER_KEYS if quant.get(key)]
    entries = tuple(str(entry) for key in keys for entry in quant[key])
    if not entries:
        return None
    return FloatLayers(entries, " and ".join(f"quantization_config.{key}" for key in keys))


def _float8_groups(quant: dict) -> list[dict]:
    """The groups of a compressed-tensors config that quantize weights to 8-bit floats."""
    groups = [group or {} for group in (quant.get("config_groups") or {}).values()]
    return [g for g in groups if (g.get("weights") or {}).get("type") == "float"
            and (g.get("weights") or {}).get("num_bits") == 8]


def _block_structure(block: Any) -> tuple[int, int]:
    if isinstance(block, str) and "x" in block:
        block = block.split("x")
    if not isinstance(block, (list, tuple)) or len(block) != 2:
        raise ValueError(f"compressed-tensors weights with strategy 'block' need block_structure [rows, columns] "
                         f"(or 'rowsxcolumns'), got {block!r}; fix the checkpoint's config.json")
    return int(block[0]), int(block[1])
