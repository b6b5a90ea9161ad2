"""Per-linear timings of the csrc ``ggml_linear`` (GGML blocks kept quantized) against ``gemv_bf16``.

SmolLM2-135M's linear shapes (merged qkv, o, merged gate_up, down) at M = 1, 4, 32, 256, 2048
activation rows (bf16), 2 threads. Each method runs on the same weights: random weights quantized
to Q4_1 and Q8_0 with gguf, and the Q4_1 weights dequantized to bf16 for ``GemvBf16Linear`` (today's
path). ``hot``: one weight, read from cache after the first call (L2/L3 resident, as in a loop over
one layer). ``cold``: calls cycle over enough copies (>= 96 MB of each method's bytes, 3x this
machine's L3) that every call reads its weight from DRAM, as a decode step over the whole model
does. GB/s = the method's weight bytes / time.

    python benchmarks/bench_ggml_linear.py [--ms 1 4 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf.quants import quantize

from plinth.model.ggml_tensor import GGMLTensor
from plinth_cpu.extension import load_extension
from plinth_cpu.gemv import GemvBf16Linear
from plinth_cpu.ggml_linear import GGMLLinear
from plinth_cpu.linear import OneDnnPackedLinear

SHAPES = {"qkv": (576 + 2 * 192, 576), "o": (576, 576), "gate_up": (2 * 1536, 576), "down": (576, 1536)}
COLD_BYTES = 96e6


def median_us(fn, copies: int, budget_s: float = 0.3, min_calls: int = 5) -> float:
    """Median µs of ``fn(i)`` over calls cycling through ``copies`` weights."""
    for i in range(min(copies, 3)):
        fn(i)
    times, start, i = [], time.perf_counter(), 0
    while len(times) < min_calls or (time.perf_counter() - start < budget_s and len(times) < 20000):
        t0 = time.perf_counter()
        fn(i % copies)
        times.append(time.perf_counter() - t0)
        i += 1
    times.sort()
    return times[len(times) // 2] * 1e6


def prepared_copies(method, weight, nbytes: int, cold: bool) -> list:
    copies = max(1, int(COLD_BYTES // nbytes)) if cold else 1
    return [method.prepare(weight) for _ in range(copies)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ms", type=int, nargs="+", default=[1, 4, 32, 256, 2048])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    module = load_extension("auto").module
    ggml = GGMLLinear(module, OneDnnPackedLinear(), types=frozenset({"Q4_1", "Q8_0"}))
    bf16 = GemvBf16Linear(module, OneDnnPackedLinear())
    rng = np.random.default_rng(0)
    rows = []
    print(f"isa {module.isa()} {module.cpu_features()}, torch {torch.__version__}, {args.threads} threads")
    print(f"{'linear':8} {'N x K':>10} {'M':>5} {'method':>6} {'hot us':>9} {'GB/s':>6} {'cold us':>9} {'GB/s':>6}")
    for name, (n, k) in SHAPES.items():
        w = (rng.standard_normal((n, k)) / k ** 0.5).astype(np.float32)
        weights = {t: GGMLTensor(t, torch.from_numpy(quantize(w, GGMLQuantizationType[t])), k) for t in ("Q4_1", "Q8_0")}
        dense = weights["Q4_1"].dequantize().to(torch.bfloat16)
        methods = {"Q4_1": (ggml, weights["Q4_1"], n // 16 * k // 32 * 320),
                   "Q8_0": (ggml, weights["Q8_0"], n // 16 * k // 32 * 544),
                   "bf16": (bf16, dense, n * k * 2)}
        for m in args.ms:
            x = torch.randn(m, k).to(torch.bfloat16)
            for label, (method, weight, nbytes) in methods.items():
                row = {"linear": name, "n": n, "k": k, "m": m, "method": label, "weight_bytes": nbytes}
                for mode in ("hot", "cold") if m <= 32 else ("hot",):
                    ws = prepared_copies(method, weight, nbytes, mode == "cold")
                    us = median_us(lambda i, ws=ws, method=method, x=x: method.apply(x, ws[i]), len(ws),
                                   budget_s=0.3 if m <= 256 else 1.0)
                    row[f"{mode}_us"], row[f"{mode}_gbps"] = us, nbytes / us / 1e3
                    del ws
                rows.append(row)
                cold = f"{row['cold_us']:9.1f} {row['cold_gbps']:6.1f}" if "cold_us" in row else ""
                print(f"{name:8} {n:>5}x{k:<4} {m:>5} {label:>6} {row['hot_us']:9.1f} {row['hot_gbps']:6.1f} {cold}",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
