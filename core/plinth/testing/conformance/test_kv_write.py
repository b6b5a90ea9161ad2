"""``write_kv`` of every backend: values land where attention reads them; padding is skipped.

Layout-agnostic: caches are compared only with each other, and read back through ``forward``.
"""

from __future__ import annotations

import pytest
import torch

from plinth.platform import AttentionLayerSpec
from plinth.testing.conformance.backends import each_backend
from plinth.testing.conformance.paged_batch import make_paged_batch
from plinth.testing.conformance.tolerances import DTYPES, assert_close

NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE = 8, 2, 64


@pytest.fixture
def dtype(plinth_platform) -> str:
    return plinth_platform.capabilities.default_dtype


def _random_write(gen, num_tokens, num_slots, dtype, device):
    slots = torch.randperm(num_slots, generator=gen)[:num_tokens]
    key = torch.randn(num_tokens, NUM_KV_HEADS, HEAD_SIZE, generator=gen).to(dtype).to(device)
    value = torch.randn(num_tokens, NUM_KV_HEADS, HEAD_SIZE, generator=gen).to(dtype).to(device)
    return key, value, slots.to(device)


def test_padding_slots_are_skipped(plinth_platform, dtype):
    device = plinth_platform.device.torch_device()
    spec = AttentionLayerSpec.default(NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE)
    for backend, block_size in each_backend(plinth_platform, NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE, dtype):
        gen = torch.Generator().manual_seed(7)
        impl = backend.make_impl(spec)
        num_blocks, num_tokens = 4, 3 * block_size
        shape = backend.kv_cache_shape(num_blocks, block_size, NUM_KV_HEADS, HEAD_SIZE)
        cache = torch.randn(*shape, generator=gen).to(DTYPES[dtype]).to(device)
        key, value, slots = _random_write(gen, num_tokens, num_blocks * block_size, DTYPES[dtype], device)
        padding = torch.rand(num_tokens, generator=gen).to(device) < 0.3
        padding[-1] = True  # the flat batch usually ends in padding
        key[padding], value[padding] = 1e4, -1e4
        padded_slots = torch.where(padding, -1, slots)

        with_padding, without_padding, all_padding = cache.clone(), cache.clone(), cache.clone()
        impl.write_kv(key, value, with_padding, padded_slots)
        impl.write_kv(key[~padding], value[~padding], without_padding, slots[~padding])
        impl.write_kv(key, value, all_padding, torch.full_like(slots, -1))
        plinth_platform.device.synchronize()
        assert not torch.equal(without_padding, cache), f"{backend.name}: write_kv wrote nothing"
        assert torch.equal(with_padding, without_padding), (
            f"{backend.name}: write_kv with padding slots (-1) changed the cache differently from "
            f"writing only the real tokens: padding must be skipped")
        assert torch.equal(all_padding, cache), f"{backend.name}: an all-padding write changed the cache"


def test_single_token_reads_back_its_value(plinth_platform, dtype):
    """Requests of one token attend only to themselves: ``forward`` returns their value."""
    spec = AttentionLayerSpec.default(NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE)
    group = NUM_HEADS // NUM_KV_HEADS
    for backend, block_size in each_backend(plinth_platform, NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE, dtype):
        gen = torch.Generator().manual_seed(11)
        impl = backend.make_impl(spec)
        batch = make_paged_batch(backend, impl, spec, [(0, 1)] * 9, block_size, DTYPES[dtype],
                                 plinth_platform.device.torch_device(), gen, num_padding_tokens=2)
        actual = batch.run(backend, impl)
        expected = torch.stack([v[0] for _, v in batch.dense_kv]).repeat_interleave(group, dim=1)
        assert_close(actual, expected, dtype, f"{backend.name}: value read back after write_kv")


def test_context_written_over_many_steps(plinth_platform, dtype):
    """Stale values are overwritten, one chunk per call as successive steps write them."""
    spec = AttentionLayerSpec.default(NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE)
    for backend, block_size in each_backend(plinth_platform, NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE, dtype):
        gen = torch.Generator().manual_seed(13)
        impl = backend.make_impl(spec)
        batch = make_paged_batch(backend, impl, spec, [(3 * block_size + 1, 2), (block_size - 1, 1)],
                                 block_size, DTYPES[dtype], plinth_platform.device.torch_device(), gen)
        device, starts = batch.kv_cache.device, batch.common.query_start_loc_cpu.tolist()
        for i, (k, v) in enumerate(batch.dense_kv):
            table = batch.common.block_table[i].cpu().long()
            pos = torch.arange(len(k) - (starts[i + 1] - starts[i]))  # the context
            slots = (table[pos // block_size] * block_size + pos % block_size).to(device)
            impl.write_kv(torch.randn_like(k[pos]).to(device), torch.randn_like(v[pos]).to(device),
                          batch.kv_cache, slots)  # stale values
            for chunk in torch.arange(len(pos)).split(5):
                impl.write_kv(k[chunk].to(device), v[chunk].to(device), batch.kv_cache, slots[chunk.to(device)])
        assert_close(batch.run(backend, impl), batch.reference(spec), dtype,
                     f"{backend.name}: attention after stale values were overwritten chunk by chunk")


@pytest.mark.parametrize("norm", [False, True], ids=["rotary", "qk_norm_rotary"])
def test_write_kv_rotary_is_rotary_then_write_kv(plinth_platform, dtype, norm):
    """Where a backend rotates k as it writes the cache (``write_kv_rotary``, API 1.7): q and k as the reference
    rotary gives them, the cache as ``write_kv`` of that key leaves it (padding skipped), the inputs untouched."""
    from plinth.ops import reference
    from plinth.platform import RotarySpec

    device = plinth_platform.device.torch_device()
    spec = AttentionLayerSpec.default(NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE)
    inv = 1.0 / (10000 ** (torch.arange(0, HEAD_SIZE, 2, dtype=torch.float32) / HEAD_SIZE))
    freqs = torch.outer(torch.arange(256, dtype=torch.float32), inv)
    cos_sin = torch.cat([freqs.cos(), freqs.sin()], -1).to(device)
    fused_any = False
    for backend, block_size in each_backend(plinth_platform, NUM_HEADS, NUM_KV_HEADS, HEAD_SIZE, dtype):
        gen = torch.Generator().manual_seed(17)
        impl = backend.make_impl(spec)
        num_blocks, num_tokens = 4, 2 * block_size + 3
        cache = torch.randn(*backend.kv_cache_shape(num_blocks, block_size, NUM_KV_HEADS, HEAD_SIZE),
                            generator=gen).to(DTYPES[dtype]).to(device)
        qkv = torch.randn(num_tokens, (NUM_HEADS + 2 * NUM_KV_HEADS) * HEAD_SIZE, generator=gen).to(DTYPES[dtype])
        qkv = qkv.to(device)
        q, k, v = qkv.split([NUM_HEADS * HEAD_SIZE, NUM_KV_HEADS * HEAD_SIZE, NUM_KV_HEADS * HEAD_SIZE], dim=-1)
        positions = torch.randint(0, 256, (num_tokens,), generator=gen).to(device)
        slots = torch.randperm(num_blocks * block_size, generator=gen)[:num_tokens]
        slots[::5] = -1  # padding
        slots = slots.to(device)
        weights = tuple((torch.rand(HEAD_SIZE, generator=gen) + 0.5).to(DTYPES[dtype]).to(device)
                        for _ in range(2)) if norm else (None, None)
        rotary = RotarySpec(HEAD_SIZE, cos_sin, True, *weights, 1e-6)
        before, fused = qkv.clone(), cache.clone()
        out = impl.write_kv_rotary(positions, q, k, v, fused, slots, rotary)
        if out is None:
            continue
        fused_any = True
        args = (positions, q, k, HEAD_SIZE, cos_sin, True)
        eq, ek = reference.qk_norm_rotary(*args, *weights, 1e-6) if norm else reference.rotary_embedding(*args)
        assert torch.equal(qkv, before), f"{backend.name}: write_kv_rotary changed its inputs"
        assert_close(out[0].reshape(eq.shape), eq, dtype, f"{backend.name}: write_kv_rotary's q")
        assert_close(out[1].reshape(ek.shape), ek, dtype, f"{backend.name}: write_kv_rotary's k")
        unfused = cache.clone()
        impl.write_kv(out[1].reshape(num_tokens, NUM_KV_HEADS, HEAD_SIZE), v.reshape(num_tokens, NUM_KV_HEADS,
                      HEAD_SIZE), unfused, slots)
        plinth_platform.device.synchronize()
        assert torch.equal(fused, unfused), (
            f"{backend.name}: the cache after write_kv_rotary differs from write_kv of the key it returned")
    if not fused_any:
        pytest.skip("no backend here rotates k as it writes the cache (write_kv_rotary declines)")
