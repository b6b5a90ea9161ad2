"""The csrc kernels equal core's reference on every ISA path this CPU runs, at several shapes.

Outputs are poisoned (NaN) before each kernel runs, so an element a kernel forgets to
write fails the comparison. Skips cleanly when the C++ extension is not built.
"""

from __future__ import annotations

import pytest
import torch

from plinth.ops import reference
from plinth.platform import CommonAttentionMetadata
from plinth.testing.conformance.tolerances import assert_close
from plinth_cpu.kernels import CsrcOps
from tests.platforms.cpu.csrc_paths import DTYPES, ISAS, STATUS, needs_extension

pytestmark = needs_extension


@pytest.fixture
def poisoned(monkeypatch):
    """Every torch.empty and torch.empty_like in the wrappers returns NaN-filled memory."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poison(t):
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", lambda *shape, dtype=None, **kw: poison(real_empty(*shape, dtype=dtype, **kw)))
    monkeypatch.setattr(torch, "empty_like", lambda x, **kw: poison(real_empty_like(x, **kw)))


def _r(gen, *shape, dtype):
    return torch.randn(*shape, generator=gen).to(dtype)


def _check(actual, expected, dtype: str, what: str) -> None:
    for a, e in zip(actual if isinstance(actual, tuple) else (actual,),
                    expected if isinstance(expected, tuple) else (expected,), strict=True):
        assert a.shape == e.shape and a.dtype == e.dtype, what
        assert_close(a, e, dtype, what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tokens,hidden", [(1, 64), (7, 576), (33, 1000), (300, 2048)])
def test_norms_and_silu(ops, poisoned, dtype, tokens, hidden):
    gen, dt = torch.Generator().manual_seed(tokens), DTYPES[dtype]
    x, res, w = _r(gen, tokens, hidden, dtype=dt), _r(gen, tokens, hidden, dtype=dt), _r(gen, hidden, dtype=dt)
    _check(ops.rms_norm(x, w, 1e-6), reference.rms_norm(x, w, 1e-6), dtype, "rms_norm")
    _check(ops.fused_add_rms_norm(x, res, w, 1e-5), reference.fused_add_rms_norm(x, res, w, 1e-5), dtype,
           "fused_add_rms_norm")
    wide = _r(gen, 3, tokens, hidden, dtype=dt) * 4
    _check(ops.silu_and_mul(wide), reference.silu_and_mul(wide), dtype, "silu_and_mul")
    strided = _r(gen, tokens, hidden + 32, dtype=dt)[:, :hidden]  # a view with a row stride
    _check(ops.rms_norm(strided, w, 1e-6), reference.rms_norm(strided, w, 1e-6), dtype, "rms_norm strided")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache_dtype", DTYPES)
@pytest.mark.parametrize("head_size,rotary_dim,neox", [(64, 64, True), (64, 64, False), (128, 64, True),
                                                         (80, 32, False)])
def test_rotary(ops, poisoned, dtype, cache_dtype, head_size, rotary_dim, neox):
    gen, dt = torch.Generator().manual_seed(head_size + rotary_dim), DTYPES[dtype]
    tokens = 19
    qkv = _r(gen, tokens, 14 * head_size, dtype=dt)
    q, k = qkv[:, : 9 * head_size], qkv[:, 9 * head_size: 12 * head_size]  # strided views, as in a model
    cache = _r(gen, 512, rotary_dim, dtype=DTYPES[cache_dtype])
    pos = torch.randint(0, 512, (tokens,), generator=gen)
    _check(ops.rotary_embedding(pos, q, k, head_size, cache, neox),
           reference.rotary_embedding(pos, q, k, head_size, cache, neox), dtype, "rotary")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache_dtype", DTYPES)
def test_write_kv(ops, dtype, cache_dtype):
    gen = torch.Generator().manual_seed(5)
    kv = torch.full((2, 6, 16, 3, 64), float("nan"), dtype=DTYPES[cache_dtype])
    expected = kv.clone()
    key, value = _r(gen, 40, 3, 64, dtype=DTYPES[dtype]), _r(gen, 40, 3, 64, dtype=DTYPES[dtype])
    slots = torch.randperm(96, generator=gen)[:37]
    slots[[0, 9, 36]] = -1
    ops.write_kv(key, value, kv, slots)
    reference.write_kv(key, value, expected, slots)
    torch.testing.assert_close(kv, expected, equal_nan=True, atol=0, rtol=0)


def _metadata(query_lens, seq_lens, block_size, num_blocks, gen):
    max_blocks = max(seq_lens) // block_size + 1
    table = torch.randperm(num_blocks, generator=gen)[: len(seq_lens) * max_blocks].view(len(seq_lens), -1).int()
    qsl = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32)
    lens = torch.tensor(seq_lens, dtype=torch.int32)
    return CommonAttentionMetadata(qsl, qsl, lens, lens, table, torch.zeros(int(qsl[-1]), dtype=torch.int64),
                                   len(seq_lens), int(qsl[-1]), max(query_lens), max(seq_lens))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache_dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,head_size,block_size,window,long", [
    (9, 3, 64, 16, None, False), (8, 8, 128, 32, None, False), (4, 1, 64, 16, 20, False),
    (6, 2, 32, 256, None, False), (16, 2, 128, 16, 600, True),
    (10, 2, 80, 16, None, False), (2, 1, 256, 16, 30, False), (3, 3, 40, 16, None, False)])  # long: big enough to run multi-threaded
def test_decode_attention(ops, dtype, cache_dtype, heads, kv_heads, head_size, block_size, window, long):
    from plinth_cpu.attention import plan

    gen = torch.Generator().manual_seed(heads * head_size)
    seq_lens = [1, 17, block_size, 3 * block_size + 5, 70] if not long else [700, 650, 40, 701, 699]
    blocks = 64 if not long else 240
    md = _metadata([1, 1, 3, 1, 1], seq_lens, block_size, blocks, gen)  # request 2 is a small prefill
    kv = _r(gen, 2, blocks, block_size, kv_heads, head_size, dtype=DTYPES[cache_dtype])
    used = torch.zeros(2, blocks * block_size, dtype=torch.bool)
    for i, n in enumerate(seq_lens):
        for p in range(n):
            used[:, int(md.block_table[i, p // block_size]) * block_size + p % block_size] = True
    kv.view(2, -1, kv_heads, head_size)[~used] = float("nan")  # unwritten slots must not be read
    query = _r(gen, md.num_actual_tokens, heads, head_size, dtype=DTYPES[dtype])
    out = torch.full_like(query, float("nan"))
    scale = head_size ** -0.5
    from plinth.platform import AttentionLayerSpec
    from plinth_cpu.attention import CpuAttentionImpl

    impl = CpuAttentionImpl(AttentionLayerSpec(heads, kv_heads, head_size, scale, window), ops)
    impl._decode_csrc(query, kv, plan(md, block_size, gather=False), out)
    expected = reference.paged_attention(query, kv, md, scale, sliding_window=window)
    decode_rows = [0, 1, 5, 6]
    _check(out[decode_rows], expected[decode_rows], dtype, "decode_attention")
    assert out[2:5].isnan().all(), "the decode kernel wrote rows of a prefill token"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache_dtype", DTYPES)
@pytest.mark.parametrize("seq_len", [1, 33, 229, 384, 1000])
def test_decode_attention_single_stream(ops, dtype, cache_dtype, seq_len):
    """One sequence (SmolLM2's heads): from ~230 positions its three KV heads run on two threads,
    and the kernel prefetches keys ahead and values early; unwritten slots (NaN) stay unread."""
    from plinth.platform import AttentionLayerSpec
    from plinth_cpu.attention import CpuAttentionImpl, plan

    heads, kv_heads, head_size, block_size, blocks = 9, 3, 64, 16, 80
    gen = torch.Generator().manual_seed(seq_len)
    md = _metadata([1], [seq_len], block_size, blocks, gen)
    kv = _r(gen, 2, blocks, block_size, kv_heads, head_size, dtype=DTYPES[cache_dtype])
    used = torch.zeros(2, blocks * block_size, dtype=torch.bool)
    for p in range(seq_len):
        used[:, int(md.block_table[0, p // block_size]) * block_size + p % block_size] = True
    kv.view(2, -1, kv_heads, head_size)[~used] = float("nan")
    query = _r(gen, 1, heads, head_size, dtype=DTYPES[dtype])
    out = torch.full_like(query, float("nan"))
    impl = CpuAttentionImpl(AttentionLayerSpec(heads, kv_heads, head_size, head_size ** -0.5, None), ops)
    impl._decode_csrc(query, kv, plan(md, block_size, gather=False), out)
    expected = reference.paged_attention(query, kv, md, head_size ** -0.5)
    _check(out, expected, dtype, "decode_attention")


def test_portable_path_equals_best(poisoned):
    gen = torch.Generator().manual_seed(0)
    x = _r(gen, 33, 576, dtype=torch.float32)
    results = {}
    for isa in ISAS:
        STATUS.module.set_isa(isa)
        results[isa] = CsrcOps(STATUS.module).silu_and_mul(torch.cat([x, x * 2], -1))
    STATUS.module.set_isa(ISAS[0])
    for isa, result in results.items():
        torch.testing.assert_close(result, results["portable"], atol=1e-6, rtol=1e-6, msg=f"{isa} vs portable")
