"""Decode launch plans beyond tiles and warps: the KV read ceiling, the cache layout, small batches.

Uses the paged kernel's timing harness of ``bench_attention_configs.py``.

    python benchmarks/bench_decode_plans.py layouts        # read ceiling; NHD vs HND x block 16/32/64
    python benchmarks/bench_decode_plans.py tail           # plans at batches 16-128 (a run's tail)
    python benchmarks/bench_decode_plans.py small-splits   # KV splits at batches 2-96, timed from CUDA graphs
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json

import torch
import triton
import triton.language as tl
from bench_attention_configs import decode_rows, make_batch, summary, time_ms
from graph_timing import graph_ms


@triton.jit
def _read_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    acc = tl.zeros([BLOCK], tl.float32)
    for start in range(pid * BLOCK, n, tl.num_programs(0) * BLOCK):
        acc += tl.load(x_ptr + start + tl.arange(0, BLOCK), mask=start + tl.arange(0, BLOCK) < n).to(tl.float32)
    tl.store(out_ptr + pid, tl.sum(acc, 0))


def read_ceiling() -> dict:
    """GB/s of a plain streaming read of 4 GB (Triton, grid-stride) and of ``torch.sum``: the bar for KV reads."""
    x = torch.randn(2 * 1024 ** 3, dtype=torch.bfloat16, device="cuda")
    nbytes = x.numel() * 2
    rows = []
    for block, warps, programs in itertools.product((2048, 4096, 8192), (4, 8), (132 * 4, 132 * 8, 132 * 16)):
        out = torch.empty(programs, dtype=torch.float32, device="cuda")
        ms = time_ms(functools.partial(_read_kernel[(programs,)], x, out, x.numel(), BLOCK=block, num_warps=warps),
                     reps=10)
        rows.append({"block": block, "warps": warps, "programs": programs, "GB_s": round(nbytes / ms / 1e6, 1)})
    rows.sort(key=lambda r: -r["GB_s"])
    torch_ms = time_ms(lambda: x.sum(dtype=torch.float32), reps=10)
    result = {"triton_best": rows[:4], "torch_sum_GB_s": round(nbytes / torch_ms / 1e6, 1)}
    print("read ceiling", json.dumps(result), flush=True)
    return result


def layout_sweep() -> dict:
    """Decode KV bandwidth by cache layout (token-major NHD, the standard; heads-major HND) and block size,
    a few launch plans each, longest first, back-to-back launches."""
    cases = {
        "T2 b200 ctx U[1024,2048]": dict(num_reqs=200, ctx_lo=1024, ctx_hi=2048, heads=32),
        "T3 b256 ctx U[100,2048] (Qwen3 heads)": dict(num_reqs=256, ctx_lo=100, ctx_hi=2048, heads=16),
        "T1 b256 ctx U[1024,1152]": dict(num_reqs=256, ctx_lo=1024, ctx_hi=1152, heads=32),
        "b64 ctx U[600,2000] (Qwen3 heads)": dict(num_reqs=64, ctx_lo=600, ctx_hi=2000, heads=16),
    }
    plans = [(64, 4, 2, 1, True), (128, 4, 4, 1, True), (64, 2, 4, 1, True), (128, 2, 4, 1, True),
             (128, 4, 3, 1, True), (64, 4, 4, 1, True)]
    results = {"read_ceiling": read_ceiling()}
    for name, shape in cases.items():
        rows = []
        for heads_major, block_size in itertools.product((False, True), (16, 32, 64)):
            batch = make_batch(**shape, kv_heads=8, head=128, block_size=block_size, heads_major=heads_major)
            for r in decode_rows(batch, plans, lambda fn: time_ms(fn, reps=5, launches=8)):
                rows.append({"layout": "HND" if heads_major else "NHD", "block": block_size, **r})
            kv_bytes = batch[-1]  # the same contexts whatever the layout
            del batch
        results[name] = summary(rows, kv_bytes, "standard NHD/16 plans",
                                lambda r: r["layout"] == "NHD" and r["block"] == 16)
        print(name, json.dumps(results[name], indent=1), flush=True)
    return results


def tail_sweep() -> dict:
    """Decode at the small batches of a run's tail (Qwen3-0.6B and Llama-8B heads, contexts U[600, 2000]):
    a few launch plans, unsplit and 2-way split, longest first, back-to-back launches."""
    plans = [(64, 4, 2), (128, 4, 3), (128, 4, 4), (64, 4, 3), (128, 2, 4), (64, 2, 4)]
    results = {}
    for heads, num_reqs in itertools.product((16, 32), (16, 24, 32, 48, 64, 96, 128)):
        batch = make_batch(num_reqs, 600, 2000, heads, 8, 128, seed=num_reqs)
        splits = (1, 2) if num_reqs <= 32 else (1,)
        grid = [(t, w, st, sp, True) for (t, w, st), sp in itertools.product(plans, splits)]
        rows = decode_rows(batch, grid, lambda fn: time_ms(fn, reps=7, launches=16))
        name = f"b{num_reqs} {'Qwen3' if heads == 16 else 'Llama-8B'} heads"
        results[name] = summary(rows, batch[-1], "plan (64, 4, 2)", lambda r: (r["tile_n"], r["warps"],
                                r["stages"]) == (64, 4, 2))
        best, ref = results[name]["best"][0], results[name]["plan (64, 4, 2)"]
        print(name, "best", {k: best[k] for k in ("tile_n", "warps", "stages", "splits", "GB_s")},
              "| (64,4,2):", [(r["splits"], r["GB_s"]) for r in ref], "| (128,4,3):",
              [(r["splits"], r["GB_s"]) for r in rows if (r["tile_n"], r["warps"], r["stages"]) == (128, 4, 3)
               and "GB_s" in r], flush=True)
    return results


def small_split_sweep() -> dict:
    """KV splits 1-8 at batches 2-96 (contexts U[600, 2000], Qwen3-0.6B and Llama-8B heads), each split count
    with the plan ``decode_launch`` gives it, against the backend's split rule; timed from CUDA graphs."""
    from plinth_triton.attention_backend import TritonAttentionBackend
    from plinth_triton.attention_plan import decode_launch

    results = {}
    for heads, num_reqs in itertools.product((16, 32), (2, 4, 8, 12, 16, 20, 24, 32, 48, 64, 96)):
        batch = make_batch(num_reqs, 600, 2000, heads, 8, 128, seed=num_reqs)
        grid = [(*decode_launch(heads // 8, 128, torch.bfloat16, num_reqs, sp), sp, True) for sp in (1, 2, 4, 8)]
        rows = decode_rows(batch, grid, lambda fn: graph_ms(lambda i: fn(), 16, reps=7))
        rule = TritonAttentionBackend(num_sms=132).build_metadata(_decode_metadata(batch)).num_splits
        name = f"b{num_reqs} {'Qwen3' if heads == 16 else 'Llama-8B'} heads"
        results[name] = {"rule_splits": rule, "rows": rows}
        print(name, "rule:", rule, [(r["splits"], r["tile_n"], r.get("GB_s")) for r in rows], flush=True)
    return results


def _decode_metadata(batch):
    from plinth.platform import CommonAttentionMetadata

    q, kv, table, seq_lens, qsl, _ = batch
    n = seq_lens.shape[0]
    return CommonAttentionMetadata(qsl, qsl.cpu(), seq_lens, seq_lens.cpu(), table, torch.zeros(n, dtype=torch.int64,
                                   device=q.device), n, n, 1, int(seq_lens.max()))


def main() -> None:
    modes = {"layouts": layout_sweep, "tail": tail_sweep, "small-splits": small_split_sweep}
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=sorted(modes))
    ap.add_argument("--json")
    args = ap.parse_args()
    results = modes[args.mode]()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
