"""FP8 checkpoints (``fp8_config.fp8_checkpoint``: ``quant_method`` ``"fp8"``, ``"fbgemm_fp8"`` or float8
``"compressed-tensors"``): their e4m3 weights dequantized with their scales as they load.

Three scale layouts, as vLLM reads them: one scale per tensor (``weight_scale``, AutoFP8 / llm-compressor
"tensor"), one per output channel (``weight_scale`` ``[N, 1]``, "channel", fbgemm_fp8), and one per block
(``weight_scale_inv`` ``[ceil(N/bn), ceil(K/bk)]``, the HF / DeepSeek fine-grained format with
``weight_block_size``; compressed-tensors "block" names it ``weight_scale`` and gives ``block_structure``).
The loader keeps the scales in float32 as stored and dequantizes in float32, so the model receives
``weight * scale`` rounded once to its dtype, and every platform runs the checkpoint; a platform that offers
``quantization="fp8"`` then re-quantizes it per output channel (the engine picks that by default for W8A8
checkpoints: a per-channel checkpoint gets its e4m3 values back, with its scales to the model dtype's
precision; per-tensor and block scales take a second rounding). Layers the checkpoint keeps in float
(``fp8_config.float_layers``) arrive as floats and pass through. Static activation scales (``input_scale``,
fbgemm's ``input_scale_ub``) and KV-cache scales (``k_scale``, ``v_scale``, ``kv_scale``, and the older
``k_proj`` / ``v_proj`` ``output_scale``) are not used: activations are quantized per token at run time
and an fp8 KV cache uses scale 1.0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import torch

logger = logging.getLogger(__name__)

SCALE_SUFFIXES = (".weight_scale_inv", ".weight_scale")  # the block format's name first (a suffix of neither)
UNUSED_SUFFIXES = (".input_scale", ".input_scale_ub", ".k_scale", ".v_scale", ".kv_scale", ".output_scale")


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
    blocks = (f"one per {block[0]} x {block[1]} block" if block else "one per block (block scales need the "
              "block size: quantization_config.weight_block_size, or a compressed-tensors group's block_structure)")
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
