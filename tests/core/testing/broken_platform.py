"""Test platforms for the conformance kit's own tests, selected as ``broken_platform:NAME``.

``REFERENCE`` runs core's reference attention backend: the kit must pass on it.
``NO_CAUSAL_MASK`` and ``WRONG_GQA`` carry a classic attention bug each: the kit must fail.
"""

from __future__ import annotations

import torch

from plinth.ops import reference
from plinth.ops.reference_backend import ReferenceAttentionBackend, ReferenceAttentionImpl
from plinth.platform import (
    Capabilities,
    ConfigPatch,
    DeviceOps,
    Platform,
    PlatformDescriptor,
    Probe,
)
from plinth.platform.linear_method import TorchLinearMethod


class HostDeviceOps(DeviceOps):
    device_type = "cpu"

    def device_count(self):
        return 1

    def device_name(self, index=0):
        return "host"

    def total_memory(self, index=0):
        return 8 << 30

    def free_memory(self, index=0):
        return 4 << 30

    def synchronize(self, index=None):
        pass

    def empty_cache(self):
        pass

    def set_device(self, index):
        pass

    def seed(self, seed):
        torch.manual_seed(seed)

    def pin_memory_supported(self):
        return False


class NoCausalMaskImpl(ReferenceAttentionImpl):
    """Bug: every query sees the whole sequence, including later positions."""

    def forward(self, query, key, value, kv_cache, metadata, out):
        starts, seq_lens = metadata.query_start_loc_cpu.tolist(), metadata.seq_lens_cpu.tolist()
        for i, seq_len in enumerate(seq_lens):
            k, v = reference.gather_kv(kv_cache, metadata.block_table[i], seq_len)
            q = query[starts[i]:starts[i + 1]]
            group = q.shape[1] // k.shape[1]
            k, v = k.float().repeat_interleave(group, 1), v.float().repeat_interleave(group, 1)
            probs = torch.softmax(torch.einsum("qhd,khd->hqk", q.float(), k) * self.spec.scale, dim=-1)
            out[starts[i]:starts[i + 1]] = torch.einsum("hqk,khd->qhd", probs, v).to(out.dtype)
        return out


class WrongGqaImpl(ReferenceAttentionImpl):
    """Bug: query head ``h`` reads KV head ``h % num_kv_heads`` instead of ``h // group``."""

    def forward(self, query, key, value, kv_cache, metadata, out):
        num_heads, num_kv_heads = query.shape[1], kv_cache.shape[-2]
        order = torch.arange(num_heads).view(num_heads // num_kv_heads, num_kv_heads).t().flatten()
        # permuting query heads so that reference's h // group mapping becomes h % num_kv_heads
        super().forward(query[:, order], key, value, kv_cache, metadata, out)
        out[:, order] = out.clone()
        return out


class RotaryWriteImpl(ReferenceAttentionImpl):
    """Rotates q and k and writes the cache in one call (``write_kv_rotary``), from the reference ops."""

    skip_padding = True

    def write_kv_rotary(self, positions, query, key, value, kv_cache, slot_mapping, rotary):
        args = (positions, query, key, rotary.head_size, rotary.cos_sin_cache, rotary.is_neox_style)
        q, k = (reference.rotary_embedding(*args) if rotary.q_norm_weight is None
                else reference.qk_norm_rotary(*args, rotary.q_norm_weight, rotary.k_norm_weight, rotary.eps))
        slots = slot_mapping
        if not self.skip_padding:
            slots = torch.where(slots < 0, slots + kv_cache.shape[1] * kv_cache.shape[2], slots)
        heads = kv_cache.shape[-2]
        reference.write_kv(k.reshape(k.shape[0], heads, -1), value.reshape(k.shape[0], heads, -1), kv_cache, slots)
        return q, k


class PaddingRotaryWriteImpl(RotaryWriteImpl):
    """Bug: padding tokens (slot -1) land in the cache's last slot."""

    skip_padding = False


def _backend(impl_cls):
    class Backend(ReferenceAttentionBackend):
        name = f"test-{impl_cls.__name__}"

        def make_impl(self, spec):
            return impl_cls(spec)

    return Backend()


class TestPlatform(Platform):
    __test__ = False  # not a pytest class
    name = "test"

    def __init__(self, impl_cls=ReferenceAttentionImpl) -> None:
        self._backend = _backend(impl_cls)

    @property
    def device(self):
        return HostDeviceOps()

    @property
    def capabilities(self):
        return Capabilities(dtypes=("float32", "bfloat16"), kv_cache_dtypes=("float32", "bfloat16"))

    def configure(self, config):
        return ConfigPatch()

    def attention_backends(self):
        return [self._backend]


class NoCausalMaskPlatform(TestPlatform):
    def __init__(self):
        super().__init__(NoCausalMaskImpl)


class WrongGqaPlatform(TestPlatform):
    def __init__(self):
        super().__init__(WrongGqaImpl)


class RotaryWritePlatform(TestPlatform):
    def __init__(self):
        super().__init__(RotaryWriteImpl)


class PaddingRotaryWritePlatform(TestPlatform):
    def __init__(self):
        super().__init__(PaddingRotaryWriteImpl)


class SwappedGatedMethod(TorchLinearMethod):
    """A fused gate/up path with gate and up mixed up: ``silu(up) * gate``."""

    def apply_silu_and_mul(self, x, prepared, bias, silu_and_mul):
        y = self.apply(x, prepared, bias)
        d = y.shape[-1] // 2
        return silu_and_mul(torch.cat([y[..., d:], y[..., :d]], dim=-1))


class SwappedGatedPlatform(TestPlatform):
    def quantization_methods(self):
        return {"unquantized": SwappedGatedMethod()}


class BiasDroppingResidualMethod(TorchLinearMethod):
    """Adds the residual in place but forgets the bias (``addmm_`` without it)."""

    def apply_add(self, x, prepared, bias, residual):
        return residual.addmm_(x, prepared.t())


class BiasDroppingResidualPlatform(TestPlatform):
    def quantization_methods(self):
        return {"unquantized": BiasDroppingResidualMethod()}


class TorchLinearPlatform(TestPlatform):
    def quantization_methods(self):
        return {"unquantized": TorchLinearMethod()}


def _descriptor(name, cls):
    return PlatformDescriptor(name=name, platform_class=f"broken_platform:{cls}",
                              probe=lambda: Probe(True, "test platform"))


REFERENCE = _descriptor("reference-test", "TestPlatform")
NO_CAUSAL_MASK = _descriptor("no-causal-mask", "NoCausalMaskPlatform")
WRONG_GQA = _descriptor("wrong-gqa", "WrongGqaPlatform")
SWAPPED_GATED = _descriptor("swapped-gated", "SwappedGatedPlatform")
TORCH_LINEAR = _descriptor("torch-linear", "TorchLinearPlatform")
BIAS_DROPPING_RESIDUAL = _descriptor("bias-dropping-residual", "BiasDroppingResidualPlatform")
ROTARY_WRITE = _descriptor("rotary-write", "RotaryWritePlatform")
PADDING_ROTARY_WRITE = _descriptor("padding-rotary-write", "PaddingRotaryWritePlatform")
