"""The csrc prefill/chunked attention kernel equals core's paged attention reference on every
ISA path this CPU runs: GQA groups 1/3/4, head sizes 64/80 (and odd ones), fresh prefills and
chunks with a context prefix, ragged lengths, bf16/fp32 queries and KV cache, sliding window.

Unwritten cache slots hold NaN (the kernel must never read them) and the output starts as
NaN, so a row the kernel forgets fails, and a decode row it writes is caught.
"""

from __future__ import annotations

import pytest
import torch

from plinth.ops import reference
from plinth.platform import AttentionLayerSpec, CommonAttentionMetadata
from plinth.testing.conformance.tolerances import assert_close
from plinth_cpu.kernels import CsrcOps
from tests.platforms.cpu.csrc_paths import DTYPES, ISAS, STATUS, needs_extension

pytestmark = needs_extension


def _batch(query_lens, seq_lens, block_size, kv_heads, head_size, cache_dtype, gen):
    """Metadata with shuffled block tables and a cache whose unwritten slots are NaN."""
    max_blocks = max(seq_lens) // block_size + 1
    num_blocks = len(seq_lens) * max_blocks + 3
    table = torch.randperm(num_blocks, generator=gen)[: len(seq_lens) * max_blocks].view(len(seq_lens), -1).int()
    qsl = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32)
    lens = torch.tensor(seq_lens, dtype=torch.int32)
    new = [torch.arange(n - q, n) for q, n in zip(query_lens, seq_lens, strict=True)]  # the new tokens' positions
    slots = torch.cat([table[i, p // block_size].long() * block_size + p % block_size for i, p in enumerate(new)])
    md = CommonAttentionMetadata(qsl, qsl, lens, lens, table, slots, len(seq_lens), int(qsl[-1]), max(query_lens),
                                 max(seq_lens))
    kv = torch.randn(2, num_blocks, block_size, kv_heads, head_size, generator=gen).to(cache_dtype)
    used = torch.zeros(num_blocks * block_size, dtype=torch.bool)
    for i, n in enumerate(seq_lens):
        pos = torch.arange(n)
        used[table[i, pos // block_size].long() * block_size + pos % block_size] = True
    kv.view(2, -1, kv_heads, head_size)[:, ~used] = float("nan")
    return md, kv


def _run(ops, query_lens, seq_lens, heads, kv_heads, head_size, dtype, cache_dtype, block_size=16, window=None):
    from plinth_cpu.attention import CpuAttentionImpl, plan

    gen = torch.Generator().manual_seed(heads * 1000 + head_size + sum(seq_lens))
    md, kv = _batch(query_lens, seq_lens, block_size, kv_heads, head_size, DTYPES[cache_dtype], gen)
    query = torch.randn(md.num_actual_tokens, heads, head_size, generator=gen).to(DTYPES[dtype])
    scale = head_size ** -0.5
    impl = CpuAttentionImpl(AttentionLayerSpec(heads, kv_heads, head_size, scale, window), ops)
    planned = plan(md, block_size, gather=False, prefill_kernel=True)
    out = torch.full_like(query, float("nan"))
    impl._prefill_csrc(query, kv, planned, out)
    expected = reference.paged_attention(query, kv, md, scale, sliding_window=window)
    starts = md.query_start_loc_cpu.tolist()
    for i, n in enumerate(query_lens):
        rows = slice(starts[i], starts[i + 1])
        if n > 1:
            assert_close(out[rows], expected[rows], dtype, f"prefill_attention request {i}")
        else:
            assert out[rows].isnan().all(), f"the prefill kernel wrote decode request {i}"
    return out, expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache_dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,head_size", [(4, 4, 64), (9, 3, 64), (8, 2, 80), (12, 3, 80)])
def test_prefill_and_chunks(ops, dtype, cache_dtype, heads, kv_heads, head_size):
    # fresh prefills (context 0), chunks behind a context, a decode row, ragged and block-straddling lengths
    query_lens = [37, 1, 5, 64, 2, 33]
    seq_lens = [37, 20, 5, 100, 81, 33 + 47]
    _run(ops, query_lens, seq_lens, heads, kv_heads, head_size, dtype, cache_dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,head_size,block_size,window", [
    (9, 3, 64, 16, 20), (4, 1, 48, 32, None), (6, 2, 40, 16, 7), (3, 3, 128, 256, None)])
def test_window_block_sizes_odd_heads(ops, dtype, heads, kv_heads, head_size, block_size, window):
    _run(ops, [70, 3, 40], [70, 50, 300], heads, kv_heads, head_size, dtype, "bfloat16", block_size, window)


def test_multithreaded_batch(ops):
    """Big enough for the parallel region (C1's shape: 9/3 heads of 64, bf16)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        _run(ops, [256, 200, 1, 256], [256, 700, 300, 256], 9, 3, 64, "bfloat16", "bfloat16")
    finally:
        torch.set_num_threads(threads)


def test_isa_paths_agree():
    """Every ISA path gives the portable path's result to fp32 rounding."""
    results = {}
    for isa in ISAS:
        STATUS.module.set_isa(isa)
        results[isa], _ = _run(CsrcOps(STATUS.module), [50, 30], [50, 90], 8, 2, 64, "float32", "float32")
    STATUS.module.set_isa(ISAS[0])
    for isa, result in results.items():
        torch.testing.assert_close(result, results["portable"], atol=1e-5, rtol=1e-5, msg=f"{isa} vs portable")


@pytest.mark.parametrize("isa", ISAS)
def test_backend_mixed_batch(isa):
    """The backend's own plan and forward on a mixed step (decodes, a prefill, a chunk) equal the
    reference; prefills take the kernel only on the ISA paths listed as faster than SDPA."""
    from plinth.platform import AttentionSelector
    from plinth_cpu.attention import PREFILL_KERNEL_ISAS, CpuAttentionBackend

    STATUS.module.set_isa(isa)
    try:
        backend = CpuAttentionBackend(CsrcOps(STATUS.module))
        assert backend.prefill_kernel == (isa in PREFILL_KERNEL_ISAS)
        assert backend.supports(AttentionSelector(64, 9, 3, "bfloat16", "auto", 16)).ok
        gen = torch.Generator().manual_seed(7)
        md, kv = _batch([1, 40, 1, 17], [30, 40, 9, 60], 16, 3, 64, torch.bfloat16, gen)
        backend.kv_cache_shape(kv.shape[1], 16, 3, 64)
        query = torch.randn(md.num_actual_tokens, 9, 64, generator=gen).to(torch.bfloat16)
        impl = backend.make_impl(AttentionLayerSpec(9, 3, 64, 0.125, None))
        out = torch.full_like(query, float("nan"))
        flat = kv.view(2, -1, 3, 64)
        key, value = flat[0][md.slot_mapping], flat[1][md.slot_mapping]  # unused by the csrc paths
        impl.forward(query, key, value, kv, backend.build_metadata(md), out)
        assert_close(out, reference.paged_attention(query, kv, md, 0.125), "bfloat16", f"backend on {isa}")
    finally:
        STATUS.module.set_isa(ISAS[0])
