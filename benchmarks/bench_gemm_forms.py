"""Llama-3.1-8B's linears through other cuBLAS call forms, at decode and prefill sizes (CUDA round 16).

``F.linear``; swapped operands (``W @ x.T``, the tokens as cuBLAS's N) alone and with the transpose back;
weights stored ``[K, N]``; and for o and down the residual added by the GEMM (``residual.addmm_(x, W.T)``,
beta = 1) against ``F.linear`` + add. Timings as in ``bench_gemm_decode.py``: CUDA graphs of 24 launches over
4 weight copies; per decode step = 32 layers.

    python benchmarks/bench_gemm_forms.py --batches 200 256 362 16384 [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from bench_gemm_decode import COPIES, LLAMA_LINEARS, graph_us
from graph_timing import save_json


def _forms(x, weights, transposed, residuals) -> dict:
    """Each call form as ``fn(i)`` over the ``i % COPIES``-th weight copy."""
    forms = {
        "linear": lambda i: F.linear(x, weights[i % COPIES]),
        "swapped": lambda i: torch.mm(weights[i % COPIES], x.t()),
        "swapped+transpose": lambda i: torch.mm(weights[i % COPIES], x.t()).t().contiguous(),
        "weights [K,N]": lambda i: torch.mm(x, transposed[i % COPIES]),
    }
    if residuals:  # o and down feed the residual stream
        forms["linear + add"] = lambda i: residuals[i % COPIES].add_(F.linear(x, weights[i % COPIES]))
        forms["addmm_"] = lambda i: residuals[i % COPIES].addmm_(x, weights[i % COPIES].t())
    return forms


def call_forms(batches) -> dict:
    """Each linear's time in every call form at each batch, and the per-decode-step sums."""
    results = {}
    for m in batches:
        totals: dict[str, float] = {}
        row = {}
        for name, (n, k) in LLAMA_LINEARS.items():
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
            transposed = [w.t().contiguous() for w in weights]
            residuals = [torch.randn(m, n, dtype=torch.bfloat16, device="cuda") for _ in range(COPIES if n == 4096 else 0)]
            forms = _forms(x, weights, transposed, residuals)
            got = {form: round(graph_us(fn), 2) for form, fn in forms.items()}
            for form, us in got.items():
                totals[form] = totals.get(form, 0.0) + us * 32 / 1e3
            row[name] = got
            print(f"{name} {n}x{k} M={m}", json.dumps(got), flush=True)
        row["per_step_ms"] = {form: round(ms, 3) for form, ms in totals.items()}
        print(f"M={m} per decode step (forms missing on some linears count only where measured):",
              json.dumps(row["per_step_ms"]), flush=True)
        results[f"M={m}"] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[200, 256, 362, 16384])
    ap.add_argument("--json")
    args = ap.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    save_json(args.json, call_forms(args.batches))


if __name__ == "__main__":
    main()
