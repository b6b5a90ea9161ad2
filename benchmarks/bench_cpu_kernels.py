"""Side-by-side micro-benchmark: csrc CPU kernels vs the torch path they replace.

Shapes are SmolLM2-135M's (hidden 576, 9 heads / 3 KV heads of 64, intermediate 1536) at
C1's decode batch (32 tokens) and a prefill chunk (1024 tokens). The torch path is core's
reference op, or for attention and KV writes the cpu platform's torch implementation.
Timings alternate between the two implementations; medians of ``--reps`` runs.

    python benchmarks/bench_cpu_kernels.py [--dtype bfloat16] [--isa avx512,avx2,portable]
"""

# ruff: noqa: B023 - each timed lambda runs inside its own loop iteration
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from plinth.ops import reference
from plinth.platform import AttentionLayerSpec, CommonAttentionMetadata
from plinth_cpu.attention import CpuAttentionImpl, plan
from plinth_cpu.extension import load_extension
from plinth_cpu.kernels import CsrcOps

HIDDEN, HEADS, KV_HEADS, HEAD, INTER, BLOCK = 576, 9, 3, 64, 1536, 16


def timed(fn, reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def decode_case(batch: int, context: int, dtype):
    blocks_per = (context + BLOCK) // BLOCK + 1
    kv = torch.randn(2, batch * blocks_per + 1, BLOCK, KV_HEADS, HEAD).to(dtype)
    table = torch.randperm(batch * blocks_per).view(batch, blocks_per).int()
    seq_lens = torch.full((batch,), context, dtype=torch.int32)
    qsl = torch.arange(batch + 1, dtype=torch.int32)
    common = CommonAttentionMetadata(qsl, qsl, seq_lens, seq_lens, table, torch.zeros(batch, dtype=torch.int64),
                                     batch, batch, 1, context)
    q = torch.randn(batch, HEADS, HEAD).to(dtype)
    return q, kv, common


def prefill_case(batch: int, query_len: int, context: int, dtype):
    """``batch`` requests of ``query_len`` new tokens behind ``context`` cached ones, keys already written."""
    seq = context + query_len
    blocks_per = seq // BLOCK + 1
    kv = torch.randn(2, batch * blocks_per, BLOCK, KV_HEADS, HEAD).to(dtype)
    table = torch.randperm(batch * blocks_per).view(batch, blocks_per).int()
    seq_lens = torch.full((batch,), seq, dtype=torch.int32)
    qsl = torch.arange(batch + 1, dtype=torch.int32) * query_len
    pos = torch.arange(context, seq)
    slots = (table[:, pos // BLOCK].long() * BLOCK + pos % BLOCK).reshape(-1)
    common = CommonAttentionMetadata(qsl, qsl, seq_lens, seq_lens, table, slots, batch, batch * query_len,
                                     query_len, seq)
    q = torch.randn(batch * query_len, HEADS, HEAD).to(dtype)
    flat = kv.view(2, -1, KV_HEADS, HEAD)
    return q, flat[0][slots], flat[1][slots], kv, common


def prefill_attention(module, isas, dtype, reps: int) -> None:
    """Prefill/chunk attention: SDPA per request (the torch path) vs one csrc call per step."""
    spec = AttentionLayerSpec.default(HEADS, KV_HEADS, HEAD)
    torch_impl = CpuAttentionImpl(spec)
    for batch, query_len, context in ((1, 256, 0), (32, 256, 0), (4, 256, 768)):
        q, k, v, kv, common = prefill_case(batch, query_len, context, dtype)
        out = torch.empty_like(q)
        torch_md = plan(common, BLOCK, gather=True)
        row = [timed(lambda: torch_impl.forward(q, k, v, kv, torch_md, out), max(reps // 10, 5))]
        csrc_md = plan(common, BLOCK, gather=False, prefill_kernel=True)
        for isa in isas:
            module.set_isa(isa)
            impl = CpuAttentionImpl(spec, CsrcOps(module))
            row.append(timed(lambda: impl.forward(q, k, v, kv, csrc_md, out), max(reps // 10, 5)))
        name = f"prefill_attention [{batch}x{query_len}+{context}]"
        print(f"{name:34s} " + " ".join(f"{t:9.1f}" for t in row) + f"  {row[0] / row[1]:.2f}x")


def cases(dtype, tokens: int):
    r = lambda *s: torch.randn(*s).to(dtype)  # noqa: E731
    w = r(HIDDEN) * 0.1 + 1
    cache = torch.randn(2048, HEAD)
    pos = torch.randint(0, 2048, (tokens,))
    kv = r(2, 4096 // BLOCK + tokens // BLOCK + 1, BLOCK, KV_HEADS, HEAD)
    slots = torch.randperm(kv.shape[1] * BLOCK)[:tokens]
    yield "rms_norm", (r(tokens, HIDDEN), w, 1e-5)
    yield "fused_add_rms_norm", (r(tokens, HIDDEN), r(tokens, HIDDEN), w, 1e-5)
    yield "silu_and_mul", (r(tokens, 2 * INTER),)
    yield "rotary_embedding", (pos, r(tokens, HEADS * HEAD), r(tokens, KV_HEADS * HEAD), HEAD, cache, True)
    yield "write_kv", (r(tokens, KV_HEADS, HEAD), r(tokens, KV_HEADS, HEAD), kv, slots)


def int8_linears(module, isas, dtype, reps: int) -> None:
    """Int8 weight-only linear (csrc) vs the model-dtype torch linear it would replace."""
    from plinth_cpu.quantization import Int8WeightOnly

    method = Int8WeightOnly(module)
    for m in (1, 32):
        for n, k in ((960, HIDDEN), (2 * INTER, HIDDEN), (HIDDEN, INTER), (49152, HIDDEN)):
            w = torch.randn(n, k) * 0.05
            x, w_model, q = torch.randn(m, k).to(dtype), w.to(dtype), method.quantize(w)
            row = [timed(lambda: torch.nn.functional.linear(x, w_model), reps // 4)]
            for isa in isas:
                module.set_isa(isa)
                row.append(timed(lambda: method.apply(x, q), reps // 4))
            name = f"int8_linear [{m}x{k}->{n}]"
            print(f"{name:34s} " + " ".join(f"{t:9.1f}" for t in row) + f"  {row[0] / row[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--isa", default="", help="ISA paths to time (default: every available one)")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--attention-only", action="store_true", help="time only the attention kernels")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    status = load_extension("auto")
    if status.module is None:
        raise SystemExit(f"the C++ kernels are not loaded: {status.reason}")
    isas = args.isa.split(",") if args.isa else list(status.module.available_isas())
    print(f"# {args.dtype}, torch threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.2f}, ISA paths {isas}; microseconds (median of {args.reps})")
    print(f"{'op':34s} {'torch':>9s} " + " ".join(f"{i:>9s}" for i in isas) + "  speed-up")
    torch_impl = CpuAttentionImpl(AttentionLayerSpec.default(HEADS, KV_HEADS, HEAD))
    for tokens in (32, 1024) if not args.attention_only else ():
        for op, case in cases(dtype, tokens):
            base = getattr(reference, op) if op != "write_kv" else torch_impl.write_kv
            row = [timed(lambda: base(*case), args.reps)]
            for isa in isas:
                status.module.set_isa(isa)
                row.append(timed(lambda: getattr(CsrcOps(status.module), op)(*case), args.reps))
            print(f"{op + f' [{tokens} tok]':34s} " + " ".join(f"{t:9.1f}" for t in row) + f"  {row[0] / row[1]:.2f}x")
    for batch, context in ((1, 384), (32, 320), (32, 1024)):
        q, kv, common = decode_case(batch, context, dtype)
        out = torch.empty_like(q)
        torch_md = plan(common, BLOCK, gather=True)
        row = [timed(lambda: torch_impl.forward(q, None, None, kv, torch_md, out), args.reps // 4)]
        csrc_md = plan(common, BLOCK, gather=False)
        for isa in isas:
            status.module.set_isa(isa)
            impl = CpuAttentionImpl(AttentionLayerSpec.default(HEADS, KV_HEADS, HEAD), CsrcOps(status.module))
            row.append(timed(lambda: impl.forward(q, None, None, kv, csrc_md, out), args.reps // 4))
        name = f"decode_attention [{batch}x{context}]"
        print(f"{name:34s} " + " ".join(f"{t:9.1f}" for t in row) + f"  {row[0] / row[1]:.2f}x")
    prefill_attention(status.module, isas, dtype, args.reps)
    if not args.attention_only:
        int8_linears(status.module, isas, dtype, args.reps)
    status.module.set_isa(status.isa)


if __name__ == "__main__":
    main()
