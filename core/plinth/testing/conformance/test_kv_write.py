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
