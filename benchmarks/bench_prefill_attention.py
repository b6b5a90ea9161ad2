"""Prefill attention against torch's own attention kernels on the same device.

T1's shape (16 prompts x 1024 tokens, Llama-3.1-8B heads: 32 query / 8 KV heads of 128, causal):
plinth's paged Triton kernel (the engine's plan) against torch's kernels on the same sizes (SDPA
flash / cuDNN / memory-efficient on a dense batch, and ``torch.nn.attention.varlen.varlen_attn``
where this torch has it). TFLOP/s counts the causal half only. (The decode GEMMs: ``bench_gemm_decode.py``.)

    python benchmarks/bench_prefill_attention.py [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F
from bench_attention_configs import make_prefill, time_ms
from plinth_triton.attention_kernel import paged_attention


def attention_cases(num_reqs: int = 16, q_len: int = 1024, heads: int = 32, kv_heads: int = 8,
                    head: int = 128, ws: bool = False) -> dict:
    q, kv, table, seq_lens, qsl, flops = make_prefill(num_reqs, q_len, heads, kv_heads, head)
    out = torch.empty_like(q)
    results = {}

    def record(name, fn):
        try:
            ms = time_ms(fn, reps=20)
        except Exception as exc:  # a backend this build lacks
            results[name] = f"unavailable: {type(exc).__name__}: {str(exc)[:120]}"
        else:
            results[name] = {"ms": round(ms, 4), "TFLOP_s": round(flops / ms / 1e9, 1)}
        print(f"  {name}: {results[name]}", flush=True)

    record("plinth paged (engine plan)", lambda: paged_attention(
        q, kv, out, query_start_loc=qsl, seq_lens=seq_lens, block_table=table, num_reqs=num_reqs,
        max_query_len=q_len, scale=head ** -0.5))
    # the same keys and values, dense: [B, H, L, D]
    k = torch.randn(num_reqs, kv_heads, q_len, head, dtype=torch.bfloat16, device="cuda")
    v = torch.randn_like(k)
    qd = q.view(num_reqs, q_len, heads, head).transpose(1, 2)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        def run(backend=backend):
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(qd, k, v, is_causal=True, enable_gqa=True)
        record(f"torch SDPA {backend.name}", run)
    # the dense kernel for fresh prompts: q, k, v as views of one qkv projection output, as in the engine
    from plinth_triton.prefill_attention import dense_prefill_attention

    tokens = num_reqs * q_len
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * head, dtype=torch.bfloat16, device="cuda")
    qv = qkv[:, : heads * head].view(tokens, heads, head)
    kv_ = qkv[:, heads * head: (heads + kv_heads) * head].view(tokens, kv_heads, head)
    vv = qkv[:, (heads + kv_heads) * head:].view(tokens, kv_heads, head)
    dense_out = torch.empty_like(qv)
    ref = F.scaled_dot_product_attention(
        qv.view(num_reqs, q_len, heads, head).transpose(1, 2), kv_.reshape(num_reqs, q_len, kv_heads, head)
        .transpose(1, 2), vv.reshape(num_reqs, q_len, kv_heads, head).transpose(1, 2), is_causal=True,
        enable_gqa=True).transpose(1, 2).reshape(tokens, heads, head)
    group = heads // kv_heads
    sweep = []
    plans = [(*p, False) for p in itertools.product((16, 32, 64), (64, 128), (4, 8), (2, 3, 4))]
    if ws:  # warp-specialized KV loop (producer warps issue the TMA loads) on the plans near the engine's
        plans = [p for p in plans if p[0] == 64 // group and p[1] == 64] + [
            (64 // group, 64, w, st, True) for w in (4, 8) for st in (2, 3, 4)] + [
            (128 // group, 64, 8, st, True) for st in (2, 3)]
    for plan in plans:
        block_q = plan[0]
        try:
            dense_prefill_attention(qv, kv_, vv, dense_out, query_start_loc=qsl, seq_lens=seq_lens,
                                    num_reqs=num_reqs, scale=head ** -0.5, plan=plan)
            torch.cuda.synchronize()
            err = float((dense_out.float() - ref.float()).abs().max())
            ms = time_ms(lambda plan=plan: dense_prefill_attention(
                qv, kv_, vv, dense_out, query_start_loc=qsl, seq_lens=seq_lens, num_reqs=num_reqs,
                scale=head ** -0.5, plan=plan), reps=20)
        except Exception as exc:  # out of shared memory / registers
            sweep.append({"plan": plan, "error": f"{type(exc).__name__}: {str(exc)[:80]}"})
            continue
        sweep.append({"plan": plan, "BLOCK_M": block_q * group, "ms": round(ms, 4),
                      "TFLOP_s": round(flops / ms / 1e9, 1), "max_err": round(err, 4)})
    ok = sorted((r for r in sweep if "ms" in r), key=lambda r: r["ms"])
    results["plinth dense (fresh prompts), best plans"] = ok[:6]
    results["plinth dense errors"] = [r for r in sweep if "error" in r][:4]
    print("  plinth dense, best plans:", json.dumps(ok[:6]), flush=True)
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError as exc:
        results["torch varlen_attn"] = f"unavailable: {exc}"
    else:
        kt = k.transpose(1, 2).reshape(num_reqs * q_len, kv_heads, head)
        vt = v.transpose(1, 2).reshape(num_reqs * q_len, kv_heads, head)
        cu = qsl.to(torch.int32)
        record("torch varlen_attn", lambda: varlen_attn(q, kt, vt, cu, cu, q_len, q_len, enable_gqa=True))
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--ws", action="store_true", help="the dense kernel's plans with and without a warp-specialized "
                    "KV loop (near the engine's plan) instead of the full sweep")
    args = ap.parse_args()
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__}", flush=True)
    print("prefill attention, 16 x 1024, Llama-8B heads, causal:", flush=True)
    results = {"T1 16 x 1024": attention_cases(ws=args.ws)}
    print("prefill attention, 14 x 560, Qwen3-0.6B heads (16 / 8), causal:", flush=True)
    results["T3 14 x 560"] = attention_cases(14, 560, heads=16, ws=args.ws)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
