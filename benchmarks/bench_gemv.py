"""Batch-1 linears: the Triton GEMV (``plinth_triton.gemv``) against cuBLAS (``F.linear``).

For each Llama-3.1-8B linear shape (L1) it captures a CUDA graph of ``COPIES`` launches on
distinct weights (so no weight is read from L2, as in a real step) and times its replays; GB/s =
weight bytes / time. A plan sweep (``BLOCK_N``, ``BLOCK_K``, warps) shows where the default plan
stands. Also times cuBLAS at the Qwen3-0.6B decode shapes of T3 (M = 256) for reference.

    python benchmarks/bench_gemv.py [--json out.json] [--sweep]
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F
from graph_timing import graph_ms
from plinth_triton.gemv import gemv, plan_gemv

LLAMA_8B = {"qkv": (6144, 4096), "o_proj": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336),
            "lm_head": (128256, 4096)}
QWEN3_06B = {"qkv": (4096, 1024), "o_proj": (1024, 2048), "gate_up": (6144, 1024), "down": (1024, 3072),
             "lm_head": (151936, 1024)}


def weights(n: int, k: int, budget_bytes: float = 1.2e9) -> list[torch.Tensor]:
    copies = max(2, min(16, int(budget_bytes // (n * k * 2))))
    return [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(copies)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()
    results = {"gemv_m1": {}, "cublas_m256_qwen3": {}}
    for name, (n, k) in LLAMA_8B.items():
        ws = weights(n, k)
        x = torch.randn(1, k, dtype=torch.bfloat16, device="cuda")
        ref = F.linear(x.float(), ws[0].float())
        err = (gemv(x, ws[0]).float() - ref).abs().max().item()
        nbytes = n * k * 2
        row = {"N": n, "K": k, "copies": len(ws), "plan": plan_gemv(n, k), "max_abs_err": err}
        for label, fn in (("cublas", lambda i, x=x, ws=ws: F.linear(x, ws[i])),
                          ("triton", lambda i, x=x, ws=ws: gemv(x, ws[i]))):
            ms = graph_ms(fn, len(ws))
            row[label] = {"us": round(ms * 1e3, 2), "GB_s": round(nbytes / ms / 1e6, 1)}
        if args.sweep:
            sweep = []
            for bn, bk, warps in itertools.product((1, 2, 4, 8, 16), (256, 512, 1024, 2048), (2, 4, 8)):
                if bn * bk > 16384:
                    continue
                ms = graph_ms(lambda i, p=(bn, bk, warps), x=x, ws=ws: gemv(x, ws[i], plan=p), len(ws), reps=10)
                sweep.append({"plan": (bn, bk, warps), "us": round(ms * 1e3, 2), "GB_s": round(nbytes / ms / 1e6, 1)})
            row["sweep_best"] = sorted(sweep, key=lambda r: r["us"])[:5]
        results["gemv_m1"][name] = row
        print(name, json.dumps(row), flush=True)
        del ws
    for name, (n, k) in QWEN3_06B.items():
        ws = weights(n, k, 0.4e9)
        x = torch.randn(256, k, dtype=torch.bfloat16, device="cuda")
        ms = graph_ms(lambda i, x=x, ws=ws: F.linear(x, ws[i]), len(ws))
        row = {"N": n, "K": k, "us": round(ms * 1e3, 2), "weight_GB_s": round(n * k * 2 / ms / 1e6, 1),
               "TFLOP_s": round(2 * 256 * n * k / ms / 1e9, 1)}
        results["cublas_m256_qwen3"][name] = row
        print("M=256", name, json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
