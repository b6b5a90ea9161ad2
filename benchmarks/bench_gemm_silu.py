"""Prefill-sized gate/up GEMM with SiLU-and-mul fused into its epilogue, against cuBLAS + plinth's kernel.

The MLP of a prefill step runs ``gate_up = F.linear(x, W_gate_up)`` (cuBLAS) and then
``silu_and_mul(gate_up)``: a kernel that reads the ``[M, 2I]`` output back and writes ``[M, I]``
(1.4 GB a layer at M = 16,384 for Llama-3.1-8B, ≈ 0.95 s of T1). Here a persistent Triton GEMM with
TMA loads reads a weight whose gate and up rows are interleaved (row 2j gate j, row 2j + 1 up j), so
one accumulator tile holds both halves of its output columns, and writes ``silu(gate) * up``
directly, with the reference's rounding points (the engine's kernel: ``plinth_triton.gated_linear``). Also timed: the same
kernel as a plain GEMM (one accumulator) on Llama-8B's four linears, to see where Triton stands
against cuBLAS at these sizes. Every plan is checked against the unfused torch path.

    python benchmarks/bench_gemm_silu.py [--tokens 16384 8192] [--json out.json]
    python benchmarks/bench_gemm_silu.py --rows 512 1024 2048 4096 8192 16384   # the engine's kernel
        # (plinth_triton.gated_linear) against cuBLAS + silu_and_mul, Llama-3.1-8B and Qwen3-0.6B shapes
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from graph_timing import graph_ms, save_json
from triton.tools.tensor_descriptor import TensorDescriptor

LLAMA_LINEARS = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}
COPIES, LAUNCHES = 2, 4


@dataclass(frozen=True)
class Plan:
    block_m: int
    block_n: int  # weight rows a tile (the fused kernel writes block_n / 2 output columns)
    block_k: int
    stages: int
    warps: int
    group_m: int
    ws: bool


@triton.jit
def _tile(tile_id, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    group = GROUP_M * num_pid_n
    first_m = (tile_id // group) * GROUP_M
    size_m = min(num_pid_m - first_m, GROUP_M)
    return first_m + (tile_id % group) % size_m, (tile_id % group) // size_m


@triton.jit
def _gemm_silu_kernel(x_desc, w_desc, y_desc, M, N, K, NUM_SMS: tl.constexpr, BLOCK_M: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, FUSED: tl.constexpr,
                      STAGES: tl.constexpr, WS: tl.constexpr):
    """Persistent tiles of ``x @ W^T`` (``N`` weight rows, ``BLOCK_N`` a tile). FUSED: ``W``'s rows are
    gate and up interleaved (row 2j gate_j, row 2j + 1 up_j), and the tile's ``BLOCK_N // 2`` output
    columns are ``silu(gate) * up``, rounded where the unfused path rounds."""
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    k_tiles = tl.cdiv(K, BLOCK_K)
    pid = tl.program_id(0)
    for i in tl.range(0, tl.cdiv(num_pid_m * num_pid_n - pid, NUM_SMS), flatten=True, warp_specialize=WS,
                      num_stages=STAGES):
        tile_id = pid + i * NUM_SMS
        pid_m, pid_n = _tile(tile_id, num_pid_m, num_pid_n, GROUP_M)
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kt in range(k_tiles):
            acc = tl.dot(x_desc.load([off_m, kt * BLOCK_K]), w_desc.load([off_n, kt * BLOCK_K]).T, acc)
        if FUSED:
            gate, up = tl.split(acc.reshape(BLOCK_M, BLOCK_N // 2, 2))
            g = gate.to(y_desc.dtype).to(tl.float32)
            silu = (g / (1.0 + tl.exp(-g))).to(y_desc.dtype).to(tl.float32)
            y_desc.store([off_m, off_n // 2], (silu * up.to(y_desc.dtype).to(tl.float32)).to(y_desc.dtype))
        else:
            y_desc.store([off_m, off_n], acc.to(y_desc.dtype))


def interleave(w: torch.Tensor) -> torch.Tensor:
    """``[gate; up]`` rows -> rows ``gate_0, up_0, gate_1, up_1, ...``."""
    half = w.shape[0] // 2
    return torch.stack((w[:half], w[half:]), dim=1).reshape(w.shape)


NUM_SMS = None


def gemm(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, plan: Plan, fused: bool) -> torch.Tensor:
    global NUM_SMS
    if NUM_SMS is None:
        NUM_SMS = torch.cuda.get_device_properties(0).multi_processor_count
    m, k = x.shape
    n = w.shape[0]
    out_n = plan.block_n // 2 if fused else plan.block_n
    tiles = triton.cdiv(m, plan.block_m) * triton.cdiv(n, plan.block_n)
    _gemm_silu_kernel[(min(NUM_SMS, tiles),)](
        TensorDescriptor.from_tensor(x, [plan.block_m, plan.block_k]),
        TensorDescriptor.from_tensor(w, [plan.block_n, plan.block_k]),
        TensorDescriptor.from_tensor(out, [plan.block_m, out_n]), m, n, k, NUM_SMS=NUM_SMS,
        BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, GROUP_M=plan.group_m, FUSED=fused,
        STAGES=plan.stages, WS=plan.ws, num_warps=plan.warps)
    return out


def plans(fused: bool):
    for bm, bn, bk, stages, group, ws in ((128, 256, 64, 3, 8, False), (128, 256, 64, 3, 8, True),
                                          (128, 256, 64, 3, 16, True), (128, 256, 32, 6, 8, False),
                                          (128, 256, 32, 6, 8, True), (256, 128, 64, 3, 8, False),
                                          (256, 128, 64, 3, 8, True)):
        yield Plan(bm, bn, bk, stages, 8, group, ws)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    from plinth_triton.activation import silu_and_mul as kernel

    return kernel(x)


def measure(m: int, name: str, n: int, k: int, fused: bool) -> dict:
    x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
    ws = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
    wi = [interleave(w) for w in ws] if fused else ws
    outs = [torch.empty(m, n // 2 if fused else n, dtype=torch.bfloat16, device="cuda") for _ in range(COPIES)]
    flops = 2.0 * m * n * k
    unfused = (lambda i: silu_and_mul(F.linear(x, ws[i % COPIES]))) if fused else (lambda i: F.linear(x, ws[i % COPIES]))
    expect = unfused(0).float()
    base = [graph_ms(unfused, LAUNCHES, reps=5)]
    row = {"M": m, "linear": name, "fused": fused, "plans": []}
    if fused:
        gate_up = F.linear(x, ws[0])
        row["cublas_alone_ms"] = round(graph_ms(lambda i: F.linear(x, ws[i % COPIES]), LAUNCHES, reps=5), 4)
        row["silu_alone_ms"] = round(graph_ms(lambda i: silu_and_mul(gate_up), LAUNCHES, reps=5), 4)
        del gate_up
    print(f"M={m} {name} fused={fused}: torch {base[0]:.3f} ms ({flops / base[0] / 1e9:.1f} TFLOP/s) "
          f"{ {k: v for k, v in row.items() if k.endswith('_ms')} }", flush=True)
    for plan in plans(fused):
        try:
            outs[0].fill_(float("nan"))
            got = gemm(x, wi[0], outs[0], plan, fused).float()
            bad = (got - expect).abs().gt(2e-2 + 2e-2 * expect.abs()).float().mean().item()
            if not bad <= 1e-4:
                row["plans"].append({"plan": asdict(plan), "error": f"mismatch {bad:.2e}"})
                print("  ", plan, "MISMATCH", bad, flush=True)
                continue
            ms = graph_ms(lambda i, plan=plan: gemm(x, wi[i % COPIES], outs[i % COPIES], plan, fused), LAUNCHES, reps=5)
        except Exception as e:  # noqa: BLE001 - a plan that does not compile is a result
            row["plans"].append({"plan": asdict(plan), "error": f"{type(e).__name__}: {str(e)[:200]}"})
            print("  ", plan, "FAILED", type(e).__name__, str(e)[:200], flush=True)
            continue
        base.append(graph_ms(unfused, LAUNCHES, reps=5))
        row["plans"].append({"plan": asdict(plan), "ms": round(ms, 4), "TFLOP_s": round(flops / ms / 1e9, 1),
                             "torch_ms_after": round(base[-1], 4), "vs_torch": round(base[-1] / ms, 3)})
        print(f"   {plan}: {ms:.3f} ms ({flops / ms / 1e9:.1f} TFLOP/s); torch right after {base[-1]:.3f} ms "
              f"({base[-1] / ms:.3f}x)", flush=True)
    row["torch_ms"] = sorted(base)[len(base) // 2]
    return row


GATE_UP_SHAPES = {"llama-3.1-8b": (28672, 4096), "qwen3-0.6b": (6144, 1024)}


def rows_sweep(rows: list[int], rounds: int = 3) -> list[dict]:
    """The engine's fused kernel against cuBLAS + the separate SiLU-and-mul kernel, alternating, median of rounds."""
    from plinth_triton.gated_linear import gated_linear

    out = []
    for model, (n, k) in GATE_UP_SHAPES.items():
        for m in rows:
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            ws = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") * 0.02 for _ in range(COPIES)]
            wi = [interleave(w) for w in ws]
            close = torch.testing.assert_close
            close(gated_linear(x, wi[0]), silu_and_mul(F.linear(x, ws[0])), atol=2e-2, rtol=2e-2)
            fused, unfused = [], []
            for _ in range(rounds):
                unfused.append(graph_ms(lambda i, x=x, ws=ws: silu_and_mul(F.linear(x, ws[i % COPIES])), LAUNCHES,
                                        reps=5))
                fused.append(graph_ms(lambda i, x=x, wi=wi: gated_linear(x, wi[i % COPIES]), LAUNCHES, reps=5))
            f, u = sorted(fused)[rounds // 2], sorted(unfused)[rounds // 2]
            row = {"model": model, "M": m, "fused_ms": round(f, 4), "unfused_ms": round(u, 4),
                   "speedup": round(u / f, 3), "fused_TFLOP_s": round(2.0 * m * n * k / f / 1e9, 1)}
            print(row, flush=True)
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", help="time the engine's kernel at these row counts instead")
    ap.add_argument("--tokens", type=int, nargs="+", default=[16384, 8192])
    ap.add_argument("--plain", nargs="*", default=["gate_up", "down"], help="linears timed as plain GEMMs too")
    ap.add_argument("--json")
    args = ap.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, flush=True)
    if args.rows:
        result = rows_sweep(args.rows)
        save_json(args.json, result)
        return
    rows = []
    for m in args.tokens:
        n, k = LLAMA_LINEARS["gate_up"]
        rows.append(measure(m, "gate_up", n, k, fused=True))
        for name in args.plain:
            rows.append(measure(m, name, *LLAMA_LINEARS[name], fused=False))
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
