"""Prefill-sized GEMMs of Llama-3.1-8B: torch's BLAS paths and weight layouts, in TFLOP/s.

``F.linear(x, W)`` with the engine's ``[N, K]`` weights against ``x @ Wt`` with the weight stored
transposed (``[K, N]``), each under torch's default BLAS, cuBLASLt and cuBLAS, at the token counts
of T1's prefill steps. CUDA graphs of back-to-back launches over distinct weight copies.

    python benchmarks/bench_gemm_prefill.py [--tokens 16384 8192] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from graph_timing import graph_ms

LLAMA_LINEARS = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
COPIES = 2
LAUNCHES = 6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, nargs="+", default=[16384, 8192])
    ap.add_argument("--json")
    args = ap.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    results = {}
    for m in args.tokens:
        for library in ("default", "cublaslt", "cublas"):
            torch.backends.cuda.preferred_blas_library(library)
            total = {"linear": 0.0, "transposed": 0.0}
            flops = 0.0
            for name, (n, k) in LLAMA_LINEARS.items():
                x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
                ws = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
                wts = [w.t().contiguous() for w in ws]
                outs = [torch.empty(m, n, dtype=torch.bfloat16, device="cuda") for _ in range(COPIES)]
                lin = graph_ms(lambda i, x=x, ws=ws: F.linear(x, ws[i % COPIES]), LAUNCHES, reps=5)
                tr = graph_ms(lambda i, x=x, wts=wts, outs=outs: torch.mm(x, wts[i % COPIES], out=outs[i % COPIES]),
                              LAUNCHES, reps=5)
                f = 2.0 * m * n * k
                flops += f
                total["linear"] += lin
                total["transposed"] += tr
                key = f"M={m} {library} {name}"
                results[key] = {"linear_TFLOP_s": round(f / lin / 1e9, 1), "transposed_TFLOP_s": round(f / tr / 1e9, 1)}
                print(key, results[key], flush=True)
                del x, ws, wts, outs
            results[f"M={m} {library} layer"] = {k: round(flops / v / 1e9, 1) for k, v in total.items()}
            print(f"M={m} {library} all four:", results[f"M={m} {library} layer"], flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
