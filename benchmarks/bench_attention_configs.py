"""Decode attention tile sweep: time and KV bandwidth of the paged kernel per launch configuration.

Runs ``plinth_triton.attention_kernel._paged_attention_kernel`` directly on decode batches
(T3-like: Qwen3-0.6B heads, batch 256, contexts U[lo, hi]; L1-like: Llama-8B heads, batch 1,
context 1024 with split-KV) for a grid of (TILE_N, num_warps, num_stages) and prints the
median time (CUDA events) and the KV bytes read per second. The current plan is marked.

    python benchmarks/bench_attention_configs.py [--json out.json]
    python benchmarks/bench_attention_configs.py --llama-decode   # T1/T2 decode shapes, splits too
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import triton
from plinth_triton.attention_kernel import _merge_splits_kernel, _paged_attention_kernel
from plinth_triton.attention_plan import plan_blocks


def make_batch(num_reqs, ctx_lo, ctx_hi, heads, kv_heads, head, block_size=16, seed=0, heads_major=False):
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(ctx_lo, ctx_hi + 1, (num_reqs,), generator=g)
    blocks_per = (ctx + block_size - 1) // block_size
    total_blocks = int(blocks_per.sum()) + 1
    perm = torch.randperm(total_blocks, generator=g)
    table = torch.zeros(num_reqs, int(blocks_per.max()), dtype=torch.int32)
    at = 0
    for i, n in enumerate(blocks_per.tolist()):
        table[i, :n] = perm[at: at + n]
        at += n
    if heads_major:  # [2, blocks, kv_heads, block_size, head] in memory, seen in the standard index order
        kv = torch.randn(2, total_blocks, kv_heads, block_size, head, dtype=torch.bfloat16,
                         device="cuda").transpose(2, 3)
    else:
        kv = torch.randn(2, total_blocks, block_size, kv_heads, head, dtype=torch.bfloat16, device="cuda")
    q = torch.randn(num_reqs, heads, head, dtype=torch.bfloat16, device="cuda")
    qsl = torch.arange(num_reqs + 1, dtype=torch.int32, device="cuda")
    return q, kv, table.cuda(), ctx.to(torch.int32).cuda(), qsl, int(ctx.sum()) * kv_heads * head * 2 * 2


def launch(q, kv, table, seq_lens, qsl, tile_n, warps, stages, splits, ordered=False):
    num_tokens, heads, head = q.shape
    kv_heads = kv.shape[3]
    group = heads // kv_heads
    block_m, block_q, _ = plan_blocks(group, head, 1, q.dtype)
    out = torch.empty_like(q)
    if splits > 1:
        part = torch.empty(splits * num_tokens * heads, head, dtype=torch.float32, device=q.device)
        ml = torch.empty(splits * num_tokens * heads, 2, dtype=torch.float32, device=q.device)
    else:
        part = ml = out
    k, v = kv[0], kv[1]
    grid = (num_tokens * kv_heads, 1, splits) if ordered else (num_tokens // block_q + num_tokens, kv_heads, splits)
    order = torch.argsort(seq_lens, descending=True)

    def run():
        _paged_attention_kernel[grid](
            q, k, v, out, part, ml, table, seq_lens, qsl, order, head ** -0.5, 1.0, num_tokens, num_tokens,
            q.stride(0), q.stride(1), out.stride(0), out.stride(1), k.stride(0), k.stride(1), k.stride(2),
            table.stride(0), NUM_HEADS=heads, BLOCK_SIZE=kv.shape[2], GROUP=group, HEAD=head, HEAD_P2=head,
            BLOCK_M=block_m, BLOCK_Q=block_q, TILE_N=tile_n, NUM_SPLITS=splits, WINDOW=0, USE_CAP=False,
            IEEE=False, ORDERED=ordered, SKIP_FRESH=False, SKIP_DECODE=False, num_warps=warps, num_stages=stages)
        if splits > 1:
            _merge_splits_kernel[(num_tokens, heads)](out, part, ml, qsl, num_tokens, num_tokens, out.stride(0),
                                                      out.stride(1), NUM_HEADS=heads, HEAD=head, HEAD_P2=head,
                                                      NUM_SPLITS=splits, num_warps=4)
    return run


def time_ms(fn, reps=30, launches=1):
    """Median milliseconds per launch, each timing over ``launches`` back-to-back launches."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(launches):
            fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / launches)
    times.sort()
    return times[len(times) // 2]


FULL = False  # --full: the whole (TILE_N, warps, stages) grid


def make_prefill(num_reqs, q_len, heads, kv_heads, head, block_size=16, seed=0):
    """``num_reqs`` prompts of ``q_len`` tokens, no context; returns the batch and its causal FLOPs."""
    g = torch.Generator().manual_seed(seed)
    blocks_per = (q_len + block_size - 1) // block_size
    total_blocks = num_reqs * blocks_per + 1
    table = torch.randperm(total_blocks, generator=g)[: num_reqs * blocks_per].view(num_reqs, blocks_per)
    kv = torch.randn(2, total_blocks, block_size, kv_heads, head, dtype=torch.bfloat16, device="cuda")
    q = torch.randn(num_reqs * q_len, heads, head, dtype=torch.bfloat16, device="cuda")
    qsl = torch.arange(0, num_reqs * q_len + 1, q_len, dtype=torch.int32, device="cuda")
    seq_lens = torch.full((num_reqs,), q_len, dtype=torch.int32, device="cuda")
    flops = num_reqs * heads * 4 * head * q_len * (q_len + 1) / 2
    return q, kv, table.to(torch.int32).cuda(), seq_lens, qsl, flops


def launch_prefill(q, kv, table, seq_lens, qsl, block_m, tile_n, warps, stages):
    num_tokens, heads, head = q.shape
    num_reqs = seq_lens.shape[0]
    kv_heads = kv.shape[3]
    group = heads // kv_heads
    block_q = block_m // group
    out = torch.empty_like(q)
    k, v = kv[0], kv[1]
    grid = (num_tokens // block_q + num_reqs, kv_heads, 1)

    def run():
        _paged_attention_kernel[grid](
            q, k, v, out, out, out, table, seq_lens, qsl, seq_lens, head ** -0.5, 1.0, num_reqs, num_tokens,
            q.stride(0), q.stride(1), out.stride(0), out.stride(1), k.stride(0), k.stride(1), k.stride(2),
            table.stride(0), NUM_HEADS=heads, BLOCK_SIZE=kv.shape[2], GROUP=group, HEAD=head, HEAD_P2=head,
            BLOCK_M=block_m, BLOCK_Q=block_q, TILE_N=tile_n, NUM_SPLITS=1, WINDOW=0, USE_CAP=False,
            IEEE=False, ORDERED=False, SKIP_FRESH=False, SKIP_DECODE=False, num_warps=warps, num_stages=stages)
    return run


def prefill_sweep() -> dict:
    cases = {
        "T1 prefill 8 x 1024 (Llama-8B heads)": dict(num_reqs=8, q_len=1024, heads=32, kv_heads=8, head=128),
        "T3 prefill 14 x 560 (Qwen3-0.6B heads)": dict(num_reqs=14, q_len=560, heads=16, kv_heads=8, head=128),
    }
    results = {}
    for name, shape in cases.items():
        q, kv, table, seq_lens, qsl, flops = make_prefill(**shape)
        rows = []
        for block_m, tile_n, warps, stages in itertools.product((64, 128), (32, 64, 128), (4, 8), (2, 3)):
            try:
                ms = time_ms(launch_prefill(q, kv, table, seq_lens, qsl, block_m, tile_n, warps, stages), reps=10)
            except (triton.runtime.errors.OutOfResources, RuntimeError) as exc:
                rows.append({"block_m": block_m, "tile_n": tile_n, "warps": warps, "stages": stages,
                             "error": type(exc).__name__})
                continue
            rows.append({"block_m": block_m, "tile_n": tile_n, "warps": warps, "stages": stages,
                         "ms": round(ms, 4), "TFLOP_s": round(flops / ms / 1e9, 1)})
        ok = sorted((r for r in rows if "ms" in r), key=lambda r: r["ms"])
        results[name] = {"best": ok[:6], "current(128,64,8,3)": [
            r for r in rows if (r["block_m"], r["tile_n"], r["warps"], r["stages"]) == (128, 64, 8, 3)]}
        print(name, json.dumps(results[name], indent=1), flush=True)
    return results


def split_sweep() -> dict:
    """Decode at mid-size batches with long contexts (T3's tail): KV splits 1-8, batch order or longest
    first, the kernel's plan (64-token tiles, 4 warps, 2 stages). Prints the best split per batch."""
    results = {}
    for num_reqs in (8, 16, 24, 32, 48, 64, 96, 128):
        q, kv, table, seq_lens, qsl, kv_bytes = make_batch(num_reqs, 800, 2000, 16, 8, 128, seed=num_reqs)
        rows = []
        for splits, ordered in itertools.product((1, 2, 4, 8), (False, True)):
            ms = time_ms(launch(q, kv, table, seq_lens, qsl, 64, 4, 2, splits, ordered))
            rows.append({"splits": splits, "ordered": ordered, "ms": round(ms, 4),
                         "GB_s": round(kv_bytes / ms / 1e6, 1)})
        results[f"b{num_reqs}"] = sorted(rows, key=lambda r: r["ms"])
        print(f"split sweep b{num_reqs}:", json.dumps(results[f"b{num_reqs}"][:4]), flush=True)
    return results


def time_ms_back_to_back(fn):
    """Per launch over 16 back-to-back launches (as a step's layers run them)."""
    return time_ms(fn, reps=10, launches=16)


def decode_rows(batch, grid, timer) -> list[dict]:
    """Time each ``(tile_n, warps, stages, splits, ordered)`` of ``grid`` on one decode batch; KV GB/s."""
    q, kv, table, seq_lens, qsl, kv_bytes = batch
    rows = []
    for tile_n, warps, stages, splits, ordered in grid:
        key = {"tile_n": tile_n, "warps": warps, "stages": stages, "splits": splits, "ordered": ordered}
        try:
            ms = timer(launch(q, kv, table, seq_lens, qsl, tile_n, warps, stages, splits, ordered))
        except (triton.runtime.errors.OutOfResources, RuntimeError) as exc:
            rows.append({**key, "error": type(exc).__name__})
            continue
        rows.append({**key, "ms": round(ms, 4), "GB_s": round(kv_bytes / ms / 1e6, 1)})
    return rows


def summary(rows, kv_bytes, reference_name, is_reference) -> dict:
    ok = sorted((r for r in rows if "ms" in r), key=lambda r: r["ms"])
    return {"kv_MB": round(kv_bytes / 1e6, 1), "best": ok[:8],
            reference_name: [r for r in rows if "ms" in r and is_reference(r)]}


def llama_decode_sweep() -> dict:
    """Llama-8B decode (T1/T2 shapes), longest first: tile, warps, stages and KV splits, back-to-back launches."""
    cases = {
        "T2 b200 ctx U[1024,2048]": dict(num_reqs=200, ctx_lo=1024, ctx_hi=2048),
        "T1 b256 ctx U[1024,1152]": dict(num_reqs=256, ctx_lo=1024, ctx_hi=1152),
        "T2 b100 ctx U[1024,2048]": dict(num_reqs=100, ctx_lo=1024, ctx_hi=2048),
        "T3 b256 ctx U[100,2048] (Qwen3 heads)": dict(num_reqs=256, ctx_lo=100, ctx_hi=2048, heads=16),
        "T3 b128 ctx U[300,1800] (Qwen3 heads)": dict(num_reqs=128, ctx_lo=300, ctx_hi=1800, heads=16),
    }
    results = {}
    for name, shape in cases.items():
        batch = make_batch(**{"heads": 32, **shape}, kv_heads=8, head=128)
        grid = itertools.product((64, 128), (2, 4, 8), (2, 3, 4), (1, 2, 4), (True,)) if FULL else \
            itertools.product((64, 128), (2, 4), (2, 3, 4), (1,), (True,))
        rows = decode_rows(batch, grid, time_ms_back_to_back)
        results[name] = summary(rows, batch[-1], "current (64, 4, 2, 1)",
                                lambda r: (r["tile_n"], r["warps"], r["stages"], r["splits"]) == (64, 4, 2, 1))
        print(name, json.dumps(results[name], indent=1), flush=True)
    return results


def _write(results: dict, path: str | None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


def main() -> None:
    global FULL
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--prefill-only", action="store_true")
    ap.add_argument("--decode-only", action="store_true")
    ap.add_argument("--splits-only", action="store_true")
    ap.add_argument("--llama-decode", action="store_true", help="only the Llama-8B decode sweep")
    args = ap.parse_args()
    FULL = args.full
    if args.llama_decode or args.splits_only:
        _write(llama_decode_sweep() if args.llama_decode else split_sweep(), args.json)
        return
    cases = {
        "T3 decode b256 ctx U[200,1600]": (dict(num_reqs=256, ctx_lo=200, ctx_hi=1600, heads=16, kv_heads=8,
                                                head=128), [1]),
        "T3 decode b64 ctx U[600,2000]": (dict(num_reqs=64, ctx_lo=600, ctx_hi=2000, heads=16, kv_heads=8,
                                               head=128), [1, 2]),
        "T3 decode b128 ctx U[300,1800]": (dict(num_reqs=128, ctx_lo=300, ctx_hi=1800, heads=16, kv_heads=8,
                                                head=128), [1]),
        "T3 decode b256 ctx U[100,2048]": (dict(num_reqs=256, ctx_lo=100, ctx_hi=2048, heads=16, kv_heads=8,
                                                head=128), [1]),
        "T2 decode b200 ctx U[1024,2048] (Llama-8B heads)": (dict(num_reqs=200, ctx_lo=1024, ctx_hi=2048, heads=32,
                                                                  kv_heads=8, head=128), [1]),
    }
    results = {} if args.decode_only else prefill_sweep()
    if args.prefill_only:
        cases = {}
    for name, (shape, split_options) in cases.items():
        batch = make_batch(**shape)
        grid = itertools.product((32, 64, 128), (2, 4, 8), (2, 3, 4), split_options, (False, True)) if FULL else \
            itertools.product((64, 128), (4,), (2, 3), split_options, (False, True))
        rows = decode_rows(batch, grid, time_ms)
        results[name] = summary(rows, batch[-1], "round4 plan (unordered)",
                                lambda r: r["warps"] == 4 and r["stages"] == 2 and not r["ordered"]
                                and r["splits"] == 1)
        print(name, json.dumps(results[name], indent=1), flush=True)
    _write(results, args.json)


if __name__ == "__main__":
    main()
