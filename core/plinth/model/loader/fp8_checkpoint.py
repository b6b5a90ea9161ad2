"""FP8 checkpoints (``quantization_config.quant_method`` ``"fp8"`` or ``"compressed-tensors"``): their
e4m3 weights dequantized with their scales as they load.

Three scale layouts, as vLLM reads them: one scale per tensor (``weight_scale``, AutoFP8 / llm-compressor
"tensor"), one per output channel (``weight_scale`` ``[N, 1]``, "channel"), and one per
``weight_block_size`` block (``weight_scale_inv`` ``[ceil(N/bn), ceil(K/bk)]``, the HF / DeepSeek
fine-grained format). The model receives ``weight * scale`` in its dtype, so every platform runs the
checkpoint; a platform that offers ``quantization="fp8"`` then re-quantizes it per output channel (the
engine picks that by default: a per-channel checkpoint gets its e4m3 values back, with its scales to the
model dtype's precision; per-tensor and block scales take a second rounding). Static activation scales
(``input_scale``) and KV-cache scales (``k_scale``, ``v_scale``, ``kv_scale``) are not used: activations
are quantized per token at run time and an fp8 KV cache uses scale 1.0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch

logger = logging.getLogger(__name__)

SCALE_SUFFIXES = (".weight_scale_inv", ".weight_scale")  # the block format's name first (a suffix of neither)
UNUSED_SUFFIXES = (".input_scale", ".k_scale", ".v_scale", ".kv_scale")


def _quantization_config(hf_config: Any) -> dict:
    quant = getattr(hf_config, "quantization_config", None)
    if quant is None:
        return {}
    return quant if isinstance(quant, dict) else getattr(quant, "to_dict", lambda: vars(quant))()


def fp8_checkpoint(hf_config: Any) -> bool:
    """Whether ``hf_config`` describes a checkpoint whose linears are stored in fp8."""
    quant = _quantization_config(hf_config)
    method = quant.get("quant_method")
    if method == "compressed-tensors":
        return quant.get("format") in ("float-quantized", "naive-quantized") and _float8_groups(quant)
    return method == "fp8"


def block_size(hf_config: Any) -> tuple[int, int] | None:
    """``quantization_config.weight_block_size`` (rows, columns of a scale's block), if the config gives it."""
    block = _quantization_config(hf_config).get("weight_block_size")
    return (int(block[0]), int(block[1])) if block else None


def _float8_groups(quant: dict) -> bool:
    """Whether a compressed-tensors config quantizes weights to 8-bit floats."""
    weights = [group.get("weights") or {} for group in (quant.get("config_groups") or {}).values()]
    return any(w.get("type") == "float" and w.get("num_bits") == 8 for w in weights)


def dequantize(weight: torch.Tensor, scale: torch.Tensor, block: tuple[int, int] | None = None) -> torch.Tensor:
    """``weight`` (e4m3 ``[N, K]``) times ``scale``: a scalar, one per row (``[N]`` / ``[N, 1]``) or one per
    ``block`` (``[ceil(N/bn), ceil(K/bk)]``), in float32."""
    w, s = weight.float(), scale.float()
    if s.numel() == 1:
        return w * s.reshape(())
    n, k = w.shape
    if (s.dim() <= 1 and s.numel() == n) or tuple(s.shape) == (n, 1):
        return w * s.reshape(n, 1)
    if block is not None and tuple(s.shape) == (-(-n // block[0]), -(-k // block[1])):
        return w * s.repeat_interleave(block[0], 0)[:n].repeat_interleave(block[1], 1)[:, :k]
    blocks = f"one per {block[0]} x {block[1]} block" if block else "one per block (with weight_block_size)"
    raise ValueError(f"an fp8 weight of shape {tuple(w.shape)} has a scale of shape {tuple(s.shape)}: expected one "
                     f"value, one per output row, or {blocks}")


def dequantize_weights(weights: Iterable[tuple[str, torch.Tensor]], dtype: torch.dtype,
                       block: tuple[int, int] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """``weights`` with every fp8 ``X.weight`` replaced by its dequantized value in ``dtype`` (matched with
    ``X.weight_scale`` or ``X.weight_scale_inv``, in either order; ``block``: the block scales' size) and the
    scale tensors dropped."""
    waiting: dict[str, torch.Tensor] = {}  # a weight or a scale whose partner has not arrived yet
    dropped: set[str] = set()
    for name, tensor in weights:
        if name.endswith(UNUSED_SUFFIXES):
            dropped.add(name.rsplit(".", 1)[1])
            continue
        scale_suffix = next((s for s in SCALE_SUFFIXES if name.endswith(s)), None)
        if scale_suffix is not None:
            key = name[: -len(scale_suffix)]
        elif name.endswith(".weight") and tensor.dtype.itemsize == 1 and tensor.is_floating_point():
            key = name[: -len(".weight")]
        else:
            yield name, tensor
            continue
        partner = waiting.pop(key, None)
        if partner is None:
            waiting[key] = tensor
            continue
        weight, scale = (partner, tensor) if scale_suffix is not None else (tensor, partner)
        try:
            yield f"{key}.weight", dequantize(weight, scale, block).to(dtype)
        except ValueError as exc:
            raise ValueError(f"fp8 checkpoint tensor {key}.weight: {exc}") from None
    if waiting:
        names = ", ".join(sorted(waiting)[:4])
        raise ValueError(f"fp8 checkpoint: weights or scales without their partner ({names}); each fp8 X.weight "
                         "needs X.weight_scale (or X.weight_scale_inv)")
    if dropped:
        logger.info("fp8 checkpoint: %s not used (activations are quantized per token at run time; an fp8 KV "
                    "cache uses scale 1.0)", ", ".join(sorted(dropped)))
