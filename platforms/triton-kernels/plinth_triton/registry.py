"""Registering the Triton kernels in a platform's ``KernelRegistry``."""

from __future__ import annotations

from plinth.platform import KernelRegistry, Op

DTYPES = ("bfloat16", "float16", "float32")


def register_kernels(registry: KernelRegistry, device_types: tuple[str, ...] = ("cuda",), priority: int = 10) -> None:
    """Add rms_norm, fused_add_rms_norm, rotary (plain and after q/k norm), silu_and_mul, write_kv and sample
    for ``device_types``."""
    from plinth_triton.activation import silu_and_mul
    from plinth_triton.kv_write import write_kv
    from plinth_triton.norm import fused_add_rms_norm, rms_norm
    from plinth_triton.rotary import qk_norm_rotary, rotary_embedding
    from plinth_triton.sampling import sample

    def on_device(traits: dict) -> bool:
        return traits.get("device_type") in device_types and traits.get("dtype") in DTYPES

    def norm_ok(traits: dict) -> bool:
        hidden = traits.get("hidden_size")
        return on_device(traits) and hidden is not None and hidden <= 16384

    def rotary_ok(traits: dict) -> bool:
        head, rot = traits.get("head_size"), traits.get("rotary_dim")
        return on_device(traits) and head is not None and rot is not None and rot % 2 == 0 and rot <= head

    registry.register(Op.RMS_NORM, rms_norm, name="triton.rms_norm", priority=priority, supports=norm_ok)
    registry.register(Op.FUSED_ADD_RMS_NORM, fused_add_rms_norm, name="triton.fused_add_rms_norm",
                      priority=priority, supports=norm_ok)
    registry.register(Op.ROTARY_EMBEDDING, rotary_embedding, name="triton.rotary", priority=priority,
                      supports=rotary_ok)
    registry.register(Op.QK_NORM_ROTARY, qk_norm_rotary, name="triton.qk_norm_rotary", priority=priority,
                      supports=rotary_ok)
    registry.register(Op.SILU_AND_MUL, silu_and_mul, name="triton.silu_and_mul", priority=priority,
                      supports=on_device)
    registry.register(Op.WRITE_KV, write_kv, name="triton.write_kv", priority=priority, supports=on_device)
    registry.register(Op.SAMPLE, sample, name="triton.sample", priority=priority, supports=on_device)
