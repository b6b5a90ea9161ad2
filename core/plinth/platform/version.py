"""The platform contract's version and how a plugin's supported range is checked."""

from __future__ import annotations

PLATFORM_API: tuple[int, int] = (1, 7)
"""``(major, minor)``. Minor versions only add members with defaults; removal bumps major.

History: 1.0 first contract; 1.1 adds ``GraphRunner.static_shapes`` (default False),
``Platform.inference_mode()`` (default ``torch.inference_mode()``) and
``plinth.platform.device_graphs.StreamGraphRunner`` (a capture/replay runner shared by
platforms whose torch backend offers ``torch.<dev>.graph``); 1.2 adds ``Feature.PROFILE_RUN``
(dummy steps at every step shape before the KV cache is sized) and the optional op
``Op.QK_NORM_ROTARY``; 1.3 adds ``LinearMethod.ggml_types`` (default empty) and
``LinearMethod.takes_ggml(type_name, dtype)``: GGUF block weights reach a method that takes them as
``plinth.model.ggml_tensor.GGMLTensor``; 1.4 adds ``LinearMethod.quantizes_lm_head`` (default True): a
method that sets it False leaves the LM head on the platform's unquantized method; 1.5 adds
``LinearMethod.prepare_gated(weight)`` and ``LinearMethod.apply_silu_and_mul(x, prepared, bias, silu_and_mul)``
(defaults: ``prepare``, then ``apply`` and the ``Op.SILU_AND_MUL`` kernel): merged gate/up projections
followed by SiLU-and-mul (Llama-style MLPs) call them, so a method may fuse the activation into its GEMM;
1.6 adds ``Capabilities.default_max_num_seqs`` and ``Capabilities.default_max_num_batched_tokens`` (default None):
the step limits an engine takes where the user sets none (vLLM's per-device defaults), and
``LinearMethod.apply_add(x, prepared, bias, residual)`` (default None: not fused): the projections that feed the
residual stream (attention output, MLP down) let a method add the residual inside its GEMM;
1.7 adds ``AttentionImpl.write_kv_rotary(positions, query, key, value, kv_cache, slot_mapping, rotary)`` and
``RotarySpec`` (default None: not fused): a layer whose rotary a ``RotarySpec`` describes lets the backend rotate q
and k and write the rotated keys and the values into the cache in one pass, instead of a rotary kernel and a KV write.
"""

ApiRange = tuple[tuple[int, int], tuple[int, int]]
"""Half-open ``[min, max)``: the plugin needs at least ``min`` and breaks at ``max``."""


def api_compatible(api: ApiRange, core_api: tuple[int, int] = PLATFORM_API) -> bool:
    low, high = api
    return tuple(low) <= core_api < tuple(high)


def format_api(api: ApiRange) -> str:
    (lo_major, lo_minor), (hi_major, hi_minor) = api
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"
