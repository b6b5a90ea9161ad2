"""Rotary position embedding with a precomputed ``cos_sin_cache`` and the common scalings.

Supported ``rope_type``s (HF ``config.rope_parameters`` or the older ``rope_scaling``):
``default``, ``linear``, ``dynamic`` (NTK, precomputed for ``factor x`` the original
context, as in vLLM), ``yarn`` and ``llama3``.
"""

from __future__ import annotations

import functools
import json
import math
import weakref
from typing import Any

import torch

from plinth.model.build_context import BuildContext
from plinth.model.layers.layer import Layer
from plinth.platform.kernels import Op


def rope_parameters(hf_config: Any) -> dict[str, Any]:
    """The rope settings of an HF config as one dict with ``rope_type`` and ``rope_theta``.

    transformers 5 keeps them (theta included) in ``config.rope_parameters``; older configs
    use ``rope_scaling`` plus a top-level ``rope_theta``. Both are read.
    """
    params = dict(getattr(hf_config, "rope_parameters", None) or getattr(hf_config, "rope_scaling", None) or {})
    if "type" in params and "rope_type" not in params:
        params["rope_type"] = params.pop("type")
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    if "partial_rotary_factor" not in params and hasattr(hf_config, "partial_rotary_factor"):
        params["partial_rotary_factor"] = hf_config.partial_rotary_factor
    return params


def _base_inv_freq(base: float, rotary_dim: int) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))


def _llama3_inv_freq(inv_freq: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    factor, low, high = p["factor"], p.get("low_freq_factor", 1.0), p.get("high_freq_factor", 4.0)
    old_len = p["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, smoothed, scaled)


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _yarn(base: float, rotary_dim: int, p: dict[str, Any], max_position: int) -> tuple[torch.Tensor, float]:
    factor = p["factor"]
    original = p.get("original_max_position_embeddings") or max_position
    attention_factor = p.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = p.get("mscale"), p.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim)
        else:
            attention_factor = _yarn_mscale(factor)
    beta_fast, beta_slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return rotary_dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if p.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rotary_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(rotary_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp
    inv_freq = _base_inv_freq(base, rotary_dim)
    return inv_freq / factor * (1 - extrapolation) + inv_freq * extrapolation, float(attention_factor)


def compute_inv_freq(p: dict[str, Any], rotary_dim: int, max_position: int) -> tuple[torch.Tensor, float, int]:
    """``(inv_freq [rotary_dim/2], attention_scale, cache_length)`` for rope settings ``p``."""
    base, rope_type = float(p["rope_theta"]), p["rope_type"]
    if rope_type == "default":
        return _base_inv_freq(base, rotary_dim), 1.0, max_position
    if rope_type == "linear":
        return _base_inv_freq(base, rotary_dim) / p["factor"], 1.0, max_position
    if rope_type == "llama3":
        return _llama3_inv_freq(_base_inv_freq(base, rotary_dim), p), 1.0, max_position
    if rope_type == "dynamic":
        factor = p["factor"]
        original = p.get("original_max_position_embeddings") or max_position
        length = int(original * factor)
        base = base * (factor * length / original - (factor - 1)) ** (rotary_dim / (rotary_dim - 2))
        return _base_inv_freq(base, rotary_dim), 1.0, max(length, max_position)
    if rope_type == "yarn":
        inv_freq, scale = _yarn(base, rotary_dim, p, max_position)
        original = p.get("original_max_position_embeddings") or max_position
        return inv_freq, scale, max(int(original * p["factor"]), max_position)
    raise ValueError(
        f"rope_type {rope_type!r} is not supported; supported: default, linear, dynamic, yarn, llama3"
    )


@functools.lru_cache(maxsize=8)
def _cos_sin_cache(params_json: str, rotary_dim: int, max_position: int) -> torch.Tensor:
    """Host cache shared by every layer of a model (layers on the host share the tensor)."""
    inv_freq, scale, length = compute_inv_freq(json.loads(params_json), rotary_dim, max_position)
    freqs = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    return torch.cat((freqs.cos() * scale, freqs.sin() * scale), dim=-1)


#: One device copy of each cache, shared by every layer that uses it while any of them lives: a
#: copy per layer of Llama-3.1-8B's cache (131,072 positions x 128 floats) would take 2 GiB of KV space.
_device_caches: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _device_cache(params_json: str, rotary_dim: int, max_position: int, device: torch.device) -> torch.Tensor:
    key = (params_json, rotary_dim, max_position, str(device))
    cache = _device_caches.get(key)
    if cache is None:
        cache = _cos_sin_cache(params_json, rotary_dim, max_position).to(device)
        _device_caches[key] = cache
    return cache


class RotaryEmbedding(Layer):
    """Rotates q and k by position through the ``rotary_embedding`` op.

    ``cos_sin_cache``: float32 ``[max_position, rotary_dim]``, cos then sin, with any
    attention scaling (YaRN) already applied.
    """

    def __init__(
        self, head_size: int, rotary_dim: int, max_position: int, params: dict[str, Any],
        ctx: BuildContext, is_neox_style: bool = True,
    ) -> None:
        super().__init__()
        self.head_size, self.rotary_dim, self.is_neox_style = head_size, rotary_dim, is_neox_style
        cache = _device_cache(json.dumps(params, sort_keys=True, default=str), rotary_dim, max_position, ctx.device)
        self.register_buffer("cos_sin_cache", cache, persistent=False)
        self._rotary = ctx.resolve(Op.ROTARY_EMBEDDING, head_size=head_size, rotary_dim=rotary_dim,
                                   is_neox_style=is_neox_style)

    def forward(
        self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._rotary(positions, query, key, self.head_size, self.cos_sin_cache, self.is_neox_style)


def get_rope(hf_config: Any, head_size: int, ctx: BuildContext, is_neox_style: bool = True) -> RotaryEmbedding:
    """The rotary embedding an HF config asks for (partial rotary and scaling included)."""
    params = rope_parameters(hf_config)
    rotary_dim = int(head_size * params.get("partial_rotary_factor", 1.0))
    max_position = getattr(hf_config, "max_position_embeddings", 2048)
    return RotaryEmbedding(head_size, rotary_dim, max_position, params, ctx, is_neox_style)
