"""Decode-batch GEMMs of Llama-3.1-8B (or Qwen3-0.6B, `--model qwen3`): cuBLAS (``F.linear``) against Triton GEMM plans.

A measurement kept for the record (benchmarks/RESULTS.md, CUDA round 7): at M = 128-256 the
best of 58 Triton plans per shape (pointer or TMA loads, 64-256 tiles, 3-5 stages) did not beat
cuBLAS over a decode step, so the engine keeps cuBLAS; the kernel lives here, not in the package.

Each timing is a CUDA graph of 24 launches cycling over 4 copies of the weight (no launch reads its
weight from L2, no host launch gaps), divided by 24. Every plan is checked against ``F.linear``.

    python benchmarks/bench_gemm_decode.py [--batches 256 128] [--json out.json]
    python benchmarks/bench_gemm_decode.py --blas-only --batches 64 128 200 256   # cuBLAS vs cuBLASLt
    python benchmarks/bench_gemm_decode.py --ws --batches 200 256   # warp-specialized K loops (Triton 3.4+)
    python benchmarks/bench_gemm_decode.py --model qwen3 --split-k --batches 64 128 256   # Qwen3-0.6B's linears
    python benchmarks/bench_gemm_decode.py --lm-head --batches 64 200 256   # the LM head (128,256 x 4,096):
        # torch's BLAS libraries and a few tiled Triton plans
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from graph_timing import graph_ms, save_json

LLAMA_LINEARS = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
QWEN3_LINEARS = {"qkv": (4096, 1024), "o": (1024, 2048), "gate_up": (6144, 1024), "down": (1024, 3072)}
# (linears, layers, weight copies cycled so that no launch reads its weight from the 50 MB L2, LM head [N, K]);
# --model picks; every mode measures the chosen model's shapes
MODELS = {"llama": (LLAMA_LINEARS, 32, 4, (128256, 4096)), "qwen3": (QWEN3_LINEARS, 28, 16, (151936, 1024))}
LINEARS, LAYERS, COPIES, LM_HEAD = MODELS["llama"]
LAUNCHES = 24


@dataclass(frozen=True)
class GemmPlan:
    block_m: int
    block_n: int
    block_k: int
    stages: int
    warps: int
    tma: bool


@triton.jit(do_not_specialize=["M"])
def _gemm_kernel(x_ptr, w_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    pid_m = pid % num_m  # programs of one weight tile side by side: the weight streams once
    pid_n = pid // num_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < M
    n_ok = offs_n < N
    x_ptrs = x_ptr + offs_m[:, None].to(tl.int64) * stride_xm + offs_k[None, :]
    w_ptrs = w_ptr + offs_n[None, :].to(tl.int64) * stride_wn + offs_k[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in range(0, tl.cdiv(K, BLOCK_K)):
        k_ok = (kt * BLOCK_K + offs_k) < K
        a = tl.load(x_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(w_ptrs, mask=n_ok[None, :] & k_ok[:, None], other=0.0)
        acc = tl.dot(a, b, acc)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    y_ptrs = y_ptr + offs_m[:, None].to(tl.int64) * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


@triton.jit(do_not_specialize=["M"])
def _gemm_tma_kernel(x_desc, w_desc, y_desc, M, N, K,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    pid_m = pid % num_m
    pid_n = pid // num_m
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in range(0, tl.cdiv(K, BLOCK_K)):
        a = x_desc.load([pid_m * BLOCK_M, kt * BLOCK_K])
        b = w_desc.load([pid_n * BLOCK_N, kt * BLOCK_K])
        acc = tl.dot(a, b.T, acc)
    y_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(y_desc.dtype))


@triton.jit(do_not_specialize=["M"])
def _gemm_ws_kernel(x_desc, w_desc, y_desc, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_K: tl.constexpr, STAGES: tl.constexpr):
    """The TMA kernel with a warp-specialized K loop: producer warps issue the loads, consumer warps the MMAs."""
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    pid_m = pid % num_m
    pid_n = pid // num_m
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in tl.range(0, tl.cdiv(K, BLOCK_K), num_stages=STAGES, warp_specialize=True):
        a = x_desc.load([pid_m * BLOCK_M, kt * BLOCK_K])
        b = w_desc.load([pid_n * BLOCK_N, kt * BLOCK_K])
        acc = tl.dot(a, b.T, acc)
    y_desc.store([pid_m * BLOCK_M, pid_n * BLOCK_N], acc.to(y_desc.dtype))


def gemm_ws(x: torch.Tensor, weight: torch.Tensor, plan: GemmPlan, out: torch.Tensor) -> torch.Tensor:
    from triton.tools.tensor_descriptor import TensorDescriptor

    m, k = x.shape
    n = weight.shape[0]
    grid = (triton.cdiv(m, plan.block_m) * triton.cdiv(n, plan.block_n),)
    _gemm_ws_kernel[grid](TensorDescriptor.from_tensor(x, [plan.block_m, plan.block_k]),
                          TensorDescriptor.from_tensor(weight, [plan.block_n, plan.block_k]),
                          TensorDescriptor.from_tensor(out, [plan.block_m, plan.block_n]), m, n, k,
                          BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, STAGES=plan.stages,
                          num_warps=plan.warps)
    return out


def ws_plans(m: int):
    for bm, bn, bk, stages, warps in itertools.product((128, 256), (128, 256), (64, 128), (3, 4), (4, 8)):
        if bm > max(128, 2 ** (m - 1).bit_length()) or bm * bn > 256 * 128 or (bm * bk + bn * bk) * 2 * stages > 220 * 1024:
            continue
        yield GemmPlan(bm, bn, bk, stages, warps, True)


@triton.jit(do_not_specialize=["M"])
def _gemm_splitk_kernel(x_desc, w_desc, y_ptr, ws_ptr, count_ptr, M, N, K, stride_ym,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT: tl.constexpr):
    """Split-K with an in-kernel fix-up: each split writes its fp32 partial tile; the split that arrives
    last (a per-tile counter) sums them, stores the output and resets the counter, so one launch does it all."""
    pid = tl.program_id(0)
    pid_s = tl.program_id(1)
    num_m = tl.cdiv(M, BLOCK_M)
    num_tiles = num_m * tl.cdiv(N, BLOCK_N)
    pid_m = pid % num_m
    pid_n = pid // num_m
    k_tiles = tl.cdiv(K, BLOCK_K)
    per = tl.cdiv(k_tiles, SPLIT)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kt in range(pid_s * per, tl.minimum((pid_s + 1) * per, k_tiles)):
        a = x_desc.load([pid_m * BLOCK_M, kt * BLOCK_K])
        b = w_desc.load([pid_n * BLOCK_N, kt * BLOCK_K])
        acc = tl.dot(a, b.T, acc)
    tile_offs = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    tl.store(ws_ptr + (pid_s * num_tiles + pid).to(tl.int64) * (BLOCK_M * BLOCK_N) + tile_offs, acc)
    tl.debug_barrier()
    arrived = tl.atomic_add(count_ptr + pid, 1, sem="acq_rel")
    if arrived == SPLIT - 1:
        for s in range(SPLIT):
            if s != pid_s:
                acc += tl.load(ws_ptr + (s * num_tiles + pid).to(tl.int64) * (BLOCK_M * BLOCK_N) + tile_offs,
                               cache_modifier=".cg")
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        tl.store(y_ptr + offs_m[:, None].to(tl.int64) * stride_ym + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))
        tl.atomic_xchg(count_ptr + pid, 0)


@dataclass(frozen=True)
class SplitPlan:
    block_m: int
    block_n: int
    block_k: int
    split: int
    stages: int
    warps: int


def gemm_splitk(x: torch.Tensor, weight: torch.Tensor, plan: SplitPlan, out: torch.Tensor, ws: torch.Tensor,
                counts: torch.Tensor) -> torch.Tensor:
    from triton.tools.tensor_descriptor import TensorDescriptor

    m, k = x.shape
    n = weight.shape[0]
    tiles = triton.cdiv(m, plan.block_m) * triton.cdiv(n, plan.block_n)
    _gemm_splitk_kernel[(tiles, plan.split)](
        TensorDescriptor.from_tensor(x, [plan.block_m, plan.block_k]),
        TensorDescriptor.from_tensor(weight, [plan.block_n, plan.block_k]), out, ws, counts, m, n, k, out.stride(0),
        BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, SPLIT=plan.split,
        num_stages=plan.stages, num_warps=plan.warps)
    return out


def split_plans(m: int):
    for bm, bn, bk, split, stages, warps in itertools.product((64, 128, 256), (64, 128), (64, 128), (2, 3, 4),
                                                               (3, 4), (4, 8)):
        if bm > max(64, 2 ** (m - 1).bit_length()) or bm < m // 2 or (bm * bk + bn * bk) * 2 * stages > 200 * 1024:
            continue
        yield SplitPlan(bm, bn, bk, split, stages, warps)


def measure_split(m: int, n: int, k: int) -> dict:
    """cuBLAS against split-K plans at one shape; every plan must also leave its tile counters at zero."""
    ws = torch.empty(4 * (m + 256) * n, dtype=torch.float32, device="cuda")
    counts = torch.zeros(4096, dtype=torch.int32, device="cuda")
    return measure(m, n, k, split_plans(m), lambda x, w, plan, out: gemm_splitk(x, w, plan, out, ws, counts),
                   settled=lambda: not counts.any())


def gemm(x: torch.Tensor, weight: torch.Tensor, plan: GemmPlan, out: torch.Tensor) -> torch.Tensor:
    """``x [M, K] @ weight[N, K].T`` into ``out [M, N]`` (fp32 accumulation)."""
    m, k = x.shape
    n = weight.shape[0]
    grid = (triton.cdiv(m, plan.block_m) * triton.cdiv(n, plan.block_n),)
    if plan.tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        _gemm_tma_kernel[grid](TensorDescriptor.from_tensor(x, [plan.block_m, plan.block_k]),
                               TensorDescriptor.from_tensor(weight, [plan.block_n, plan.block_k]),
                               TensorDescriptor.from_tensor(out, [plan.block_m, plan.block_n]), m, n, k,
                               BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k,
                               num_stages=plan.stages, num_warps=plan.warps)
    else:
        _gemm_kernel[grid](x, weight, out, m, n, k, x.stride(0), weight.stride(0), out.stride(0),
                           BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k,
                           num_stages=plan.stages, num_warps=plan.warps)
    return out


def graph_us(fn) -> float:
    """Microseconds of one ``fn(i)`` call, from a graph of ``LAUNCHES`` calls."""
    return graph_ms(fn, LAUNCHES, reps=7) * 1e3


def plans(m: int):
    for bm, bn, bk, stages, tma in itertools.product((64, 128, 256), (64, 128, 256), (64, 128), (3, 4, 5),
                                                      (False, True)):
        if bm > max(64, m) or bm * bn > 256 * 128 or (bk == 128 and stages > 4):
            continue
        if (bm * bk + bn * bk) * 2 * stages > 220 * 1024:
            continue
        yield GemmPlan(bm, bn, bk, stages, 8 if bm * bn >= 128 * 128 else 4, tma)


def measure(m: int, n: int, k: int, candidates, launch, settled=lambda: True) -> dict:
    """cuBLAS and every plan of ``candidates`` at one shape (``launch(x, weight, plan, out)``): times, weight
    TB/s, the 5 best; a plan counts only if it matches ``F.linear`` before and after the graph replays."""
    weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
    x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
    outs = [torch.empty(m, n, dtype=torch.bfloat16, device="cuda") for _ in range(COPIES)]
    cublas = graph_us(lambda i: F.linear(x, weights[i % COPIES]))

    def matches(plan, w) -> bool:
        got = launch(x, w, plan, outs[0])
        torch.cuda.synchronize()
        return torch.allclose(got.float(), F.linear(x, w).float(), atol=2e-2, rtol=2e-2) and settled()

    rows = []
    for plan in candidates:
        try:
            if not matches(plan, weights[0]):
                rows.append({"plan": asdict(plan), "error": "mismatch"})
                continue
            us = graph_us(lambda i, plan=plan: launch(x, weights[i % COPIES], plan, outs[i % COPIES]))
            if not matches(plan, weights[1]):
                rows.append({"plan": asdict(plan), "error": "mismatch after graph replays"})
                continue
        except Exception as exc:  # out of resources, unsupported descriptor
            rows.append({"plan": asdict(plan), "error": f"{type(exc).__name__}: {str(exc)[:80]}"})
            continue
        rows.append({"plan": asdict(plan), "us": round(us, 2), "TB_s": round(n * k * 2 / us / 1e6, 2)})
    ok = sorted((r for r in rows if "us" in r), key=lambda r: r["us"])
    return {"cublas_us": round(cublas, 2), "cublas_TB_s": round(n * k * 2 / cublas / 1e6, 2), "best": ok[:5],
            "errors": [r for r in rows if "error" in r][:3], "plans": len(rows)}


def measure_shape(m: int, n: int, k: int) -> dict:
    """cuBLAS and every tiled Triton plan at one shape."""
    return measure(m, n, k, plans(m), gemm)


def blas_libraries(batches) -> dict:
    """Per decode step (every layer's four linears): torch's default BLAS against cuBLASLt / cuBLAS preferred."""
    results = {}
    for library in ("default", "cublaslt", "cublas"):
        if library != "default":
            torch.backends.cuda.preferred_blas_library(library)
        for m in batches:
            total = 0.0
            for n, k in LINEARS.values():
                weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
                xk = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
                total += graph_us(lambda i, xk=xk, weights=weights: F.linear(xk, weights[i % COPIES])) * LAYERS / 1e3
            results[f"{library} M={m}"] = round(total, 3)
            weight_ms = sum(n * k for n, k in LINEARS.values()) * 2 * LAYERS / 3e12 * 1e3
            print(f"{library:9s} M={m}: linears per decode step {total:.3f} ms (weights at 3.0 TB/s: {weight_ms:.3f} ms)",
                  flush=True)
    return results


def lm_head(batches) -> dict:
    """The LM head (Llama-3.1-8B: 128,256 x 4,096) at decode batches: each BLAS library and a few Triton plans."""
    n, k = LM_HEAD
    results = {}
    for m in batches:
        row = {}
        for library in ("default", "cublaslt", "cublas"):
            torch.backends.cuda.preferred_blas_library(library)
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
            row[library] = round(graph_us(lambda i, x=x, weights=weights: F.linear(x, weights[i % COPIES])), 2)
            del weights
        torch.backends.cuda.preferred_blas_library("default")
        candidates = [GemmPlan(bm, bn, 64, st, 8 if bm * bn >= 128 * 128 else 4, True)
                      for bm, bn, st in ((64, 128, 4), (128, 128, 4), (256, 128, 3), (128, 256, 3), (64, 256, 4))
                      if bm <= max(64, 2 ** (m - 1).bit_length())]
        row["triton"] = measure(m, n, k, candidates, gemm)
        row["weight_bound_us_at_3TBs"] = round(n * k * 2 / 3e12 * 1e6, 1)
        print(f"lm_head M={m}", json.dumps(row), flush=True)
        results[f"M={m}"] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-head", action="store_true", help="the LM head: BLAS libraries and a few Triton plans")
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--blas-only", action="store_true", help="only torch's BLAS libraries, per decode step")
    ap.add_argument("--split-k", nargs="*", metavar="LINEAR", help="split-K plans against cuBLAS on these linears")
    ap.add_argument("--ws", nargs="*", metavar="LINEAR", help="warp-specialized TMA plans against cuBLAS on these")
    ap.add_argument("--model", choices=tuple(MODELS), default="llama", help="whose linears (default Llama-3.1-8B)")
    ap.add_argument("--json")
    args = ap.parse_args()
    global LINEARS, LAYERS, COPIES, LM_HEAD
    LINEARS, LAYERS, COPIES, LM_HEAD = MODELS[args.model]
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, flush=True)
    if args.lm_head:
        results = lm_head(args.batches)
        save_json(args.json, results)
        return
    if args.split_k is not None or args.ws is not None:
        results = {}
        names = (args.split_k if args.split_k is not None else args.ws) or tuple(LINEARS)
        for m in args.batches:
            saved = 0.0
            for name in names:
                n, k = LINEARS[name]
                results[f"{name} M={m}"] = r = (measure_split(m, n, k) if args.split_k is not None
                                                else measure(m, n, k, ws_plans(m), gemm_ws))
                print(f"{name} {n}x{k} M={m}", json.dumps(r), flush=True)
                if r["best"]:
                    saved += max(0.0, r["cublas_us"] - r["best"][0]["us"]) * LAYERS / 1e3
            print(f"M={m}: the best plans would save {saved:.3f} ms a decode step ({LAYERS} layers)", flush=True)
        save_json(args.json, results)
        return
    if args.blas_only:
        results = blas_libraries(args.batches)
        save_json(args.json, results)
        return
    results, step = {}, {}
    for m in args.batches:
        step[m] = {"cublas_ms": 0.0, "best_of_both_ms": 0.0, "best": {}}
        for name, (n, k) in LINEARS.items():
            key = f"{name} {n}x{k} M={m}"
            results[key] = measure_shape(m, n, k)
            print(key, json.dumps(results[key]), flush=True)
            cublas, best = results[key]["cublas_us"], results[key]["best"]
            step[m]["cublas_ms"] += cublas * LAYERS / 1e3
            step[m]["best_of_both_ms"] += min([cublas] + [r["us"] for r in best[:1]]) * LAYERS / 1e3
            if best:
                step[m]["best"][name] = best[0]["plan"]
    for m, s in step.items():
        print(f"M={m}: {LAYERS} layers of linears per decode step: cuBLAS {s['cublas_ms']:.3f} ms, "
              f"best of (cuBLAS, Triton) per shape {s['best_of_both_ms']:.3f} ms", flush=True)
    save_json(args.json, {"shapes": results, "per_step": step})


if __name__ == "__main__":
    main()
