"""Tiny fp8 checkpoints (AutoFP8 / HF fine-grained / compressed-tensors) built from the tiny random-weight models."""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from safetensors.torch import load_file, save_file

from plinth.model.loader.fp8_checkpoint import dequantize
from tests.e2e.conftest import save_tiny_model

E4M3 = torch.float8_e4m3fn


def quantize(w: torch.Tensor, layout: str, block: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` as an fp8 checkpoint stores it: ``(e4m3 weight, scale)`` with scale = absmax / 448 per tensor,
    row or ``block`` x ``block`` tile (the tile's scale broadcast back over it)."""
    n, k = w.shape
    if layout == "tensor":
        scale = w.abs().amax() / 448
        return (w / scale).to(E4M3), scale.reshape(1)
    if layout == "channel":
        scale = w.abs().amax(dim=1, keepdim=True) / 448
        return (w / scale).to(E4M3), scale
    tiles = torch.nn.functional.pad(w.abs(), (0, -k % block, 0, -n % block))
    scale = tiles.reshape(tiles.shape[0] // block, block, -1, block).amax(dim=(1, 3)) / 448
    full = scale.repeat_interleave(block, 0)[:n].repeat_interleave(block, 1)[:, :k]
    return (w / full).to(E4M3), scale


def save_fp8_checkpoint(tmp_path, layout: str, *, fmt: str = "fp8", keep_float: Sequence[str] = (),
                        quant_extra: dict | None = None):
    """A tiny Llama with its decoder linears stored as an fp8 checkpoint (``layout`` scales), and the same
    model with the dequantized weights in float32 for transformers.

    ``fmt``: ``"fp8"`` (AutoFP8 / HF fine-grained names and config), ``"compressed-tensors"`` (W8A8 float8
    groups) or ``"compressed-tensors-w8a16"`` (weight-only groups). ``keep_float``: module names
    (``model.layers.0.mlp.down_proj``) stored unquantized; ``quant_extra``: merged into the
    quantization_config (e.g. the list of layers kept in float)."""
    source = save_tiny_model("llama", tmp_path / "float")
    tensors = load_file(source / "model.safetensors")
    scale_suffix = "_scale_inv" if layout == "block" and fmt == "fp8" else "_scale"
    fp8, dequantized = {}, {}
    for name, t in tensors.items():
        if name.endswith("_proj.weight") and name.removesuffix(".weight") not in keep_float:
            q, scale = quantize(t.float(), layout)
            fp8[name] = q
            fp8[name + scale_suffix] = scale
            fp8[name.removesuffix(".weight") + ".input_scale"] = torch.ones(1)
            dequantized[name] = dequantize(q, scale, (32, 32) if layout == "block" else None)
        else:
            fp8[name] = dequantized[name] = t
    config = json.loads((source / "config.json").read_text())
    quant = {**_quantization_config(fmt, layout), **(quant_extra or {})}
    fp8_dir, ref_dir = tmp_path / "fp8", tmp_path / "ref"
    for folder, weights, cfg in ((fp8_dir, fp8, {**config, "quantization_config": quant}), (ref_dir, dequantized, config)):
        folder.mkdir()
        save_file(weights, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps(cfg))
    return fp8_dir, ref_dir


def _quantization_config(fmt: str, layout: str) -> dict:
    if fmt == "fp8":
        return {"quant_method": "fp8", "activation_scheme": "dynamic",
                **({"weight_block_size": [32, 32]} if layout == "block" else {})}
    weights = {"type": "float", "num_bits": 8, "symmetric": True, "dynamic": False, "strategy": layout,
               **({"block_structure": [32, 32]} if layout == "block" else {})}
    activations = None if fmt == "compressed-tensors-w8a16" else {
        "type": "float", "num_bits": 8, "symmetric": True, "dynamic": True, "strategy": "token"}
    return {"quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights,
                                          "input_activations": activations}}}


def add_tensors(folder, tensors: dict[str, torch.Tensor]) -> None:
    """Add ``tensors`` to (or replace them in) the folder's ``model.safetensors``."""
    path = folder / "model.safetensors"
    save_file({**load_file(path), **tensors}, path)
