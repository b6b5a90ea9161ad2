"""Kernel-vs-reference checks shared by the GPU tests and the Triton-interpreter CPU tests.

Each check draws fresh random inputs, poisons outputs (NaN) where the kernel writes into a
given tensor, and compares with ``plinth.ops.reference`` at the conformance tolerances.
"""

from __future__ import annotations

import torch

from plinth.ops import reference
from plinth.platform import AttentionLayerSpec, CommonAttentionMetadata

TOL = {torch.float32: (2e-4, 2e-4), torch.bfloat16: (2e-2, 2e-2), torch.float16: (5e-3, 5e-3)}


def close(actual, expected, dtype, what):
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(actual.float().cpu(), expected.float().cpu(), atol=atol, rtol=rtol,
                               msg=lambda m: f"{what}: {m}")


def check_attention(shapes, *, group, head_size, block_size, dtype, device, seed=0, window=None, cap=None,
                    num_kv_heads=2, num_splits=1, pad_tokens=0, ordered=False, pad_reqs=0, fresh=False,
                    mixed_decode=False, kv_dtype=None, on_grid=False):
    """Random paged batch (``shapes`` = [(context_len, query_len)]) through the Triton kernel.

    ``ordered``: decode programs start longest request first (``order``); ``pad_reqs`` padding
    requests without tokens follow the real ones, as in a graph replay padded to a captured size.
    ``fresh``: the step's keys and values go along (``fresh_kv``, as the backend passes them), so
    requests without context take the dense prefill kernel; they are views of one qkv buffer, as in
    the engine. ``mixed_decode``: a step with prompts gives its one-query rows their own decode launch
    (``decode_rows_first``, as the backend does). ``kv_dtype``: the cache's dtype when it is not ``dtype``
    (fp8): the expected values attend over the keys and values as the cache stores them. ``on_grid``: keys
    and values already on the fp8 grid, so the write's cast is exact (the Triton interpreter's fp8 cast
    does not carry a rounded-up mantissa into the exponent: -125.7 becomes -64; the GPU's cast is right)."""
    from plinth_triton.attention_kernel import paged_attention
    from plinth_triton.attention_plan import decode_rows_first
    from plinth_triton.kv_write import write_kv

    gen = torch.Generator().manual_seed(seed)
    num_heads = num_kv_heads * group
    blocks_needed = [-(-(c + q) // block_size) for c, q in shapes]
    num_blocks = sum(blocks_needed) + 2
    perm = torch.randperm(num_blocks, generator=gen)
    table = torch.randint(0, num_blocks, (len(shapes), max(blocks_needed) + 1), generator=gen)
    used = 0
    for i, n in enumerate(blocks_needed):
        table[i, :n] = perm[used:used + n]
        used += n
    assert kv_dtype is None or not fresh, "fresh prompts attend over the unquantized step keys"
    cache = torch.full((2, num_blocks, block_size, num_kv_heads, head_size), float("nan"), dtype=kv_dtype or dtype)
    cache = cache.to(device)
    dense, slots_all, keys, values = [], [], [], []
    for i, (c, q) in enumerate(shapes):
        k = torch.randn(c + q, num_kv_heads, head_size, generator=gen).to(dtype)
        v = torch.randn(c + q, num_kv_heads, head_size, generator=gen).to(dtype)
        if on_grid:
            k, v = (reference.to_cache_dtype(x, kv_dtype).to(dtype) for x in (k, v))
        pos = torch.arange(c + q)
        slots_all.append(table[i, pos // block_size] * block_size + pos % block_size)
        keys.append(k)
        values.append(v)
        if kv_dtype is not None:  # what the cache holds, read back in the query's dtype
            k, v = (reference.to_cache_dtype(x, kv_dtype).to(dtype) for x in (k, v))
        dense.append((k, v))
    write_kv(torch.cat(keys).to(device), torch.cat(values).to(device), cache, torch.cat(slots_all).to(device))
    q_lens = torch.tensor([q for _, q in shapes])
    total = int(q_lens.sum())
    query = torch.randn(total + pad_tokens, num_heads, head_size, generator=gen).to(dtype).to(device)
    fresh_kv = None
    if fresh:  # q, k, v of the step as slices of one [T, (H + 2 KVH) * D] buffer
        width = num_heads * head_size
        kv_width = num_kv_heads * head_size
        qkv = torch.randn(total + pad_tokens, width + 2 * kv_width, generator=gen).to(dtype)
        step = [(k[c:], v[c:]) for (c, _), (k, v) in zip(shapes, dense, strict=True)]
        qkv[:total, width:width + kv_width] = torch.cat([k for k, _ in step]).reshape(total, kv_width)
        qkv[:total, width + kv_width:] = torch.cat([v for _, v in step]).reshape(total, kv_width)
        qkv[:, :width] = query.cpu().reshape(-1, width)
        qkv = qkv.to(device)
        query = qkv[:, :width].view(-1, num_heads, head_size)
        fresh_kv = (qkv[:, width:width + kv_width].view(-1, num_kv_heads, head_size),
                    qkv[:, width + kv_width:].view(-1, num_kv_heads, head_size))
    qsl = torch.cat([torch.zeros(1, dtype=torch.int64), q_lens.cumsum(0), torch.full((pad_reqs,), total)]).int()
    seq_lens = torch.tensor([c + q for c, q in shapes] + [0] * pad_reqs, dtype=torch.int32)
    table = torch.cat([table, table[:1].expand(pad_reqs, -1)])
    out = torch.full_like(query, float("nan"))
    scale = head_size ** -0.5
    order = torch.argsort(seq_lens, descending=True).to(device) if ordered else None
    decode_rows = 0
    if mixed_decode:
        assert int(q_lens.max()) > 1 and not ordered, "mixed_decode is for steps with prompts"
        decode_rows = int((q_lens == 1).sum())
        order = decode_rows_first(qsl.to(device), seq_lens.to(device), len(shapes) + pad_reqs)
    paged_attention(query, cache, out, query_start_loc=qsl.to(device), seq_lens=seq_lens.to(device),
                    block_table=table.int().to(device), num_reqs=len(shapes) + pad_reqs,
                    max_query_len=int(q_lens.max()), scale=scale, sliding_window=window, logits_soft_cap=cap,
                    num_splits=num_splits, order=order, decode_rows=decode_rows, fresh_kv=fresh_kv)
    starts = qsl.tolist()
    expected = torch.cat([
        reference.attention(query[starts[i]:starts[i + 1]].cpu(), k, v, scale, sliding_window=window,
                            logits_soft_cap=cap) for i, (k, v) in enumerate(dense)])
    close(out[:total], expected, dtype,
          f"attention {shapes} g{group} d{head_size} bs{block_size} {dtype}" + (" fresh" if fresh else "")
          + (f" kv {kv_dtype}" if kv_dtype else "")
          + (" mixed-decode" if mixed_decode else ""))


def check_elementwise(dtype, device, seed=0, tokens=(1, 5), hidden=(64, 96)):
    """rms_norm, fused_add_rms_norm, silu_and_mul, rotary and qk_norm_rotary (neox and gpt-j, partial)
    vs reference."""
    from plinth_triton.activation import silu_and_mul
    from plinth_triton.norm import fused_add_rms_norm, rms_norm
    from plinth_triton.rotary import qk_norm_rotary, rotary_embedding

    gen = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=gen).to(dtype).to(device)

    for n in tokens:
        for h in hidden:
            x, res, w = r(n, h), r(n, h), r(h) * 0.1 + 1
            close(rms_norm(x, w, 1e-6), reference.rms_norm(x, w, 1e-6), dtype, "rms_norm")
            a, b = fused_add_rms_norm(x, res, w, 1e-6)
            ea, eb = reference.fused_add_rms_norm(x, res, w, 1e-6)
            close(a, ea, dtype, "fused_add_rms_norm out")
            close(b, eb, dtype, "fused_add_rms_norm residual")
            g = r(n, 2 * h)
            close(silu_and_mul(g), reference.silu_and_mul(g), dtype, "silu_and_mul")
        x3 = r(n, 3, 32)
        w3 = r(32) * 0.1 + 1
        close(rms_norm(x3, w3, 1e-6), reference.rms_norm(x3, w3, 1e-6), dtype, "rms_norm 3d")
        for head, rot, neox in ((32, 32, True), (32, 32, False), (64, 32, True), (96, 64, False)):
            inv = 1.0 / (10000 ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot))
            freqs = torch.outer(torch.arange(64, dtype=torch.float32), inv)
            cache = torch.cat([freqs.cos(), freqs.sin()], -1).to(device)
            pos = torch.randint(0, 64, (n,), generator=gen).to(device)
            qkv = r(n, 7 * head)  # 4 q heads and 3 k heads (a non-power-of-two count)
            q, k = qkv[:, : 4 * head], qkv[:, 4 * head:]
            aq, ak = rotary_embedding(pos, q, k, head, cache, neox)
            eq, ek = reference.rotary_embedding(pos, q, k, head, cache, neox)
            close(aq, eq, dtype, f"rotary q {head}/{rot}/{neox}")
            close(ak, ek, dtype, f"rotary k {head}/{rot}/{neox}")
            # Qwen3's path: per-head RMSNorm of q and k, then rotary, in one kernel
            wq, wk = r(head) * 0.1 + 1, r(head) * 0.1 + 1
            aq, ak = qk_norm_rotary(pos, q, k, head, cache, neox, wq, wk, 1e-6)
            eq, ek = reference.qk_norm_rotary(pos, q, k, head, cache, neox, wq, wk, 1e-6)
            close(aq, eq, dtype, f"qk_norm_rotary q {head}/{rot}/{neox}")
            close(ak, ek, dtype, f"qk_norm_rotary k {head}/{rot}/{neox}")


def check_gemv(dtype, device, seed=0, shapes=((1, 64), (37, 96), (300, 1000), (8, 1536))):
    """The batch-1 GEMV and its linear method vs ``F.linear`` (odd N and K, bias, [1, K] and [K] inputs);
    inputs of more rows go to ``F.linear`` unchanged."""
    import torch.nn.functional as F
    from plinth_triton.gemv import GemvLinear, gemv

    gen = torch.Generator().manual_seed(seed)
    method = GemvLinear(num_sms=4)
    for n, k in shapes:
        w = (torch.randn(n, k, generator=gen) * k ** -0.5).to(dtype).to(device)
        b = torch.randn(n, generator=gen).to(dtype).to(device)
        x = torch.randn(1, k, generator=gen).to(dtype).to(device)
        expected = F.linear(x.float(), w.float())
        close(gemv(x, w), expected, dtype, f"gemv {n}x{k}")
        close(gemv(x[0], w, b), expected[0] + b.float(), dtype, f"gemv 1-d with bias {n}x{k}")
        for plan in ((1, 16, 1), (4, 64, 2)):
            close(gemv(x, w, plan=plan), expected, dtype, f"gemv {n}x{k} plan {plan}")
        close(method.apply(x, method.prepare(w), b), expected + b.float(), dtype, f"GemvLinear {n}x{k}")
        x3 = torch.randn(3, k, generator=gen).to(dtype).to(device)
        close(method.apply(x3, w), F.linear(x3.float(), w.float()), dtype, f"GemvLinear 3 rows {n}x{k}")


def check_gated_linear(dtype, device, seed=0, shapes=((37, 40, 96), (130, 72, 544), (1, 64, 32), (5, 36, 48)),
                       plans=((16, 32, 16, 1, 4, 2), (32, 64, 32, 2, 4, 1)), num_programs=3):
    """The gate/up GEMM with SiLU-and-mul fused (``gated_linear``, on the interleaved weight) and the
    pairwise SiLU-and-mul against the unfused reference (each projection rounded to ``dtype``, then
    ``reference.silu_and_mul``); ``GemvLinear``'s gated path above and below its row threshold, with and
    without bias, never handing the interleaved product to the plain kernel. Shapes: ``(rows, K, 2I)``;
    a K that is not a multiple of 8 falls back (no TMA)."""
    import torch.nn.functional as F
    from plinth_triton.activation import silu_and_mul
    from plinth_triton.gated_linear import gated_linear, gated_supported, interleave_gate_up
    from plinth_triton.gemv import GemvLinear, InterleavedGateUp

    def never(_):
        raise AssertionError("an interleaved gate/up product reached the plain SiLU-and-mul kernel")

    gen = torch.Generator().manual_seed(seed)
    for m, k, n in shapes:
        w = (torch.randn(n, k, generator=gen) * k ** -0.5).to(dtype).to(device)
        b = torch.randn(n, generator=gen).to(dtype).to(device)
        x = torch.randn(m, k, generator=gen).to(dtype).to(device)
        expected = reference.silu_and_mul(F.linear(x.float(), w.float()).to(dtype))
        with_bias = reference.silu_and_mul((F.linear(x.float(), w.float()) + b.float()).to(dtype))
        wi = interleave_gate_up(w)
        assert torch.equal(wi[0::2], w[: n // 2]) and torch.equal(wi[1::2], w[n // 2:])
        close(silu_and_mul(F.linear(x, wi), interleaved=True), expected, dtype, f"pairwise silu_and_mul {m}x{k}x{n}")
        if gated_supported(x, wi):
            for plan in plans:
                close(gated_linear(x, wi, plan, num_programs=num_programs), expected, dtype,
                      f"gated_linear {m}x{k}x{n} plan {plan}")
            close(gated_linear(x.reshape(1, m, k), wi, plans[0], num_programs=num_programs).reshape(m, n // 2),
                  expected, dtype, f"gated_linear 3-d {m}x{k}x{n}")
        # interleaved only where the fused kernel can ever take the weight (16-bit, TMA-sized); the plain
        # layout otherwise, which must go through the kernel it is handed
        interleaves = dtype != torch.float32 and n % 16 == 0 and k % 8 == 0
        kernel = never if interleaves else reference.silu_and_mul
        for threshold in (1, m + 1):
            method = GemvLinear(num_sms=num_programs, gated_min_rows=threshold)
            prepared = method.prepare_gated(w)
            assert isinstance(prepared, InterleavedGateUp) == interleaves
            close(method.apply_silu_and_mul(x, prepared, None, kernel), expected, dtype,
                  f"GemvLinear gated {m}x{k}x{n} ≥{threshold}")
            close(method.apply_silu_and_mul(x, prepared, b, kernel), with_bias, dtype, f"GemvLinear gated+bias {m}x{k}x{n}")
            close(method.apply_silu_and_mul(x, prepared, b, kernel), with_bias, dtype, "the interleaved bias, cached")
            close(method.apply_silu_and_mul(x[:1], prepared, None, kernel), expected[:1], dtype,
                  f"GemvLinear gated 1 row {k}x{n}")
        unfused = GemvLinear(num_sms=num_programs)  # gated_min_rows None: the contract's default path
        assert unfused.prepare_gated(w) is w
        close(unfused.apply_silu_and_mul(x, w, b, reference.silu_and_mul), with_bias, dtype, "GemvLinear unfused")


def check_write_kv(dtype, device, seed=0, kv_dtype=None, on_grid=False):
    """The Triton write against the reference, bit for bit; an fp8 ``kv_dtype`` cache also gets values
    beyond the format's range (saturated). ``on_grid``: values already on the fp8 grid (see
    ``check_attention``: the interpreter's fp8 rounding is wrong at binade edges)."""
    from plinth_triton.kv_write import write_kv

    gen = torch.Generator().manual_seed(seed)
    for n, bs, heads, hs in ((5, 16, 2, 64), (9, 32, 1, 128)):
        cache = torch.randn(2, 4, bs, heads, hs, generator=gen).to(kv_dtype or dtype).to(device)
        slots = torch.randperm(4 * bs, generator=gen)[:n]
        slots[n // 2] = -1
        spread = 300.0 if kv_dtype is not None else 1.0  # e4m3 saturates at 448
        k = (torch.randn(n, heads, hs, generator=gen) * spread).to(dtype).to(device)
        v = (torch.randn(n, heads, hs, generator=gen) * spread).to(dtype).to(device)
        if on_grid:
            k, v = (reference.to_cache_dtype(x, kv_dtype).to(dtype) for x in (k, v))
        if kv_dtype is not None:
            k[0, 0, :2] = torch.tensor([6e4, -6e4], dtype=dtype)
        a, b = cache.clone(), cache.clone()
        write_kv(k, v, a, slots.to(device))
        reference.write_kv(k, v, b, slots.to(device))
        bits = torch.uint8 if a.element_size() == 1 else a.dtype
        assert torch.equal(a.cpu().view(bits), b.cpu().view(bits)), f"write_kv differs from the reference ({kv_dtype})"
        assert not b.float().isnan().any(), "a saturated write must not store NaN"


def check_rotary_write_kv(dtype, device, seed=0, kv_dtype=None, tokens=(1, 9), exact_reference=True):
    """``rotary_write_kv`` (rotary, or Qwen3's norm + rotary, and the KV write in one launch) against the two
    launches it replaces: the rotated q and k those of ``rotary_embedding`` / ``qk_norm_rotary`` (within the
    dtype's tolerance against the reference; the compiler may contract the products differently in the two
    kernels), the cache bit for bit what ``write_kv`` of the returned key stores (padding slots skipped, fp8
    saturated), the inputs untouched. ``exact_reference``: the cache also bit for bit ``reference.write_kv`` of it
    (off under the interpreter, whose fp8 cast rounds differently at binade edges)."""
    from plinth_triton.kv_write import write_kv
    from plinth_triton.rotary import qk_norm_rotary, rotary_embedding, rotary_write_kv

    gen = torch.Generator().manual_seed(seed)
    spread = 300.0 if kv_dtype is not None else 1.0  # e4m3 saturates at 448
    for n in tokens:
        for head, rot, neox, norm, bs in ((32, 32, True, False, 16), (64, 32, True, True, 16),
                                          (96, 64, False, False, 32), (32, 32, False, True, 16)):
            inv = 1.0 / (10000 ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot))
            freqs = torch.outer(torch.arange(64, dtype=torch.float32), inv)
            cos_sin = torch.cat([freqs.cos(), freqs.sin()], -1).to(device)
            pos = torch.randint(0, 64, (n,), generator=gen).to(device)
            qkv = (torch.randn(n, 10 * head, generator=gen) * spread).to(dtype).to(device)  # 4 q, 3 k, 3 v heads
            q, k, v = qkv[:, : 4 * head], qkv[:, 4 * head: 7 * head], qkv[:, 7 * head:]
            weights = ((torch.randn(head, generator=gen) * 0.1 + 1).to(dtype).to(device),) * 2 if norm else (None,) * 2
            blocks = n // bs + 2
            cache = torch.randn(2, blocks, bs, 3, head, generator=gen).to(kv_dtype or dtype).to(device)
            slots = torch.randperm(blocks * bs, generator=gen)[:n]
            if n > 1:
                slots[n // 2] = -1  # a padding token
            slots = slots.to(device)
            before = qkv.clone()
            fused = cache.clone()
            aq, ak = rotary_write_kv(pos, q, k, v, fused, slots, head, cos_sin, neox, *weights, 1e-6)
            eq, ek = (qk_norm_rotary(pos, q, k, head, cos_sin, neox, *weights, 1e-6) if norm
                      else rotary_embedding(pos, q, k, head, cos_sin, neox))
            what = f"rotary_write_kv n={n} head={head} rot={rot} neox={neox} norm={norm} cache={kv_dtype or dtype}"
            assert torch.equal(qkv, before), f"{what}: changed its inputs"
            assert aq.shape == q.shape and ak.shape == k.shape, what
            args = (pos, q, k, head, cos_sin, neox)
            rq, rk = reference.qk_norm_rotary(*args, *weights, 1e-6) if norm else reference.rotary_embedding(*args)
            for ours, unfused_out, ref, name in ((aq, eq, rq, "q"), (ak, ek, rk, "k")):
                close(ours, ref, dtype, f"{what}: {name}")
                close(ours, unfused_out, dtype, f"{what}: {name} against the rotary kernel")
            bits = torch.uint8 if cache.element_size() == 1 else cache.dtype
            unfused = cache.clone()
            write_kv(ak.reshape(n, 3, head), v.reshape(n, 3, head), unfused, slots)
            assert torch.equal(fused.view(bits), unfused.view(bits)), f"{what}: cache differs from write_kv's"
            if exact_reference:
                ref = cache.clone()
                reference.write_kv(ak.reshape(n, 3, head), v.reshape(n, 3, head), ref, slots)
                assert torch.equal(fused.view(bits), ref.view(bits)), f"{what}: cache differs from the reference"
            assert not torch.equal(fused.view(bits), cache.view(bits)), f"{what}: wrote nothing"


__all__ = ["AttentionLayerSpec", "CommonAttentionMetadata", "check_attention", "check_elementwise", "check_gemv",
           "check_rotary_write_kv", "check_write_kv"]


def _fp8_grid_rows(m, k, gen, dtype):
    """Rows whose per-row fp8 quantization is exact: e4m3 values times a power of two, each row's
    absmax at 448 (so its scale is that power of two and every ``x / scale`` is on the grid)."""
    q = (torch.randn(m, k, generator=gen) * 100).clamp(-448, 448).to(torch.float8_e4m3fn).float()
    q[:, 0] = 448.0 * torch.where(torch.rand(m, generator=gen) < 0.5, -1.0, 1.0)
    powers = 2.0 ** torch.randint(-12, -4, (m, 1), generator=gen).float()
    return (q * powers).to(dtype)


def check_fp8_linear(dtype, device, seed=0, on_grid=False, scaled_mm=True,
                     shapes=((1, 32, 64), (5, 48, 96), (37, 64, 2064), (3, 40, 64))):
    """The fp8 linear method: the row-quantization kernel bit for bit against its torch reference (scales
    and e4m3 values, zero and odd-width rows included), then ``apply`` (``_scaled_mm``, or the reference
    for widths not a multiple of 16) against the dequantized operands' product in float64. ``on_grid``:
    rows whose quantization is exact (the Triton interpreter's fp8 cast is wrong at binade edges).
    ``scaled_mm=False``: skip the multi-row ``apply`` where ``torch._scaled_mm`` lacks rowwise scales (CPU
    tensors before torch 2.13); the quantization kernel and the single-row GEMV are still checked."""
    from plinth_triton.fp8_linear import Fp8Linear, quantize_rows, quantize_rows_reference

    gen = torch.Generator().manual_seed(seed)
    method, gemv_method = Fp8Linear(single_row_gemv=False), Fp8Linear(single_row_gemv=True)
    for m, n, k in shapes:
        x = _fp8_grid_rows(m, k, gen, dtype) if on_grid else (torch.randn(m, k, generator=gen) * 3).to(dtype)
        x[-1] = 0  # an all-zero row: scale EPS / 448, zeros
        x = x.to(device)
        q, s = quantize_rows(x)
        q_ref, s_ref = quantize_rows_reference(x)
        assert torch.equal(s.cpu(), s_ref.cpu()), f"fp8 row scales {m}x{k}"
        assert torch.equal(q.view(torch.uint8).cpu(), q_ref.view(torch.uint8).cpu()), f"fp8 row values {m}x{k}"
        w = (torch.randn(n, k, generator=gen) * k ** -0.5).to(dtype).to(device)
        b = torch.randn(n, generator=gen).to(dtype).to(device)
        prepared = method.prepare(w)
        w_scale = w.float().abs().amax(dim=1).clamp_min(1e-12) / 448
        assert torch.allclose(prepared.scale.reshape(-1).cpu(), w_scale.cpu()), f"fp8 weight scales {n}x{k}"
        deq_w = prepared.qweight.double() * prepared.scale.double().reshape(-1, 1)
        assert (deq_w - w.double()).abs().max() <= w_scale.double().max() * 16 + 1e-9, "fp8 weight rounding"
        expected = (q_ref.double() * s_ref.double()) @ deq_w.T + b.double()
        scale = expected.abs().max().item()
        what = f"Fp8Linear {m}x{n}x{k}"
        if scaled_mm or n % 16 or k % 16:  # unaligned widths take the torch reference, not _scaled_mm
            got = method.apply(x.reshape(1, m, k), prepared, b)
            assert got.shape == (1, m, n) and got.dtype == dtype
            torch.testing.assert_close(got[0].double().cpu(), expected.cpu(), atol=2e-2 * scale, rtol=2e-2,
                                       msg=lambda msg, what=what: f"{what}: {msg}")
        row = gemv_method.apply(x[-2:-1] if m > 1 else x, prepared, b)  # one row: the GEMV on e4m3 operands
        torch.testing.assert_close(row.double().cpu(), (expected[-2:-1] if m > 1 else expected).cpu(),
                                   atol=2e-2 * scale, rtol=2e-2, msg=lambda msg, what=what: f"{what} GEMV: {msg}")
        empty = method.apply(x[:0], prepared, b)  # no rows (either path)
        assert empty.shape == (0, n) and empty.dtype == dtype
        for wrong in (x[:, : k // 2], x.reshape(1, m, k)[..., :-1]):  # a width that is not K: named, not regrouped
            try:
                method.apply(wrong, prepared, b)
            except ValueError as exc:
                assert f"takes {k} input features" in str(exc) and str(tuple(wrong.shape)) in str(exc), str(exc)
            else:
                raise AssertionError(f"Fp8Linear {m}x{n}x{k}: an input of shape {tuple(wrong.shape)} was accepted")
