"""Rotary + KV write in one launch (``rotary_write_kv``) against the two launches it replaces.

Graph-timed (``graph_ms``: replays of a graph of 32 calls over distinct caches, no host launch cost), µs per layer,
at the engine's shapes: T3 decode (Qwen3-0.6B heads 16/8 of 128 with q/k norms, 256 and 64 rows), L1 decode
(Llama-3.1-8B heads 32/8, 1 row), T2 decode (200 rows) and a 16,384-token prefill step.

    python benchmarks/bench_rotary_write.py
"""

from __future__ import annotations

import argparse
import json

import torch
from graph_timing import graph_ms, save_json
from plinth_triton.kv_write import write_kv
from plinth_triton.rotary import qk_norm_rotary, rotary_embedding, rotary_write_kv

CASES = {  # name: (rows, q heads, kv heads, Qwen3's q/k norms)
    "T3 decode b256 (Qwen3-0.6B)": (256, 16, 8, True),
    "T3 decode b64 (Qwen3-0.6B)": (64, 16, 8, True),
    "L1 decode b1 (Llama-8B)": (1, 32, 8, False),
    "T2 decode b200 (Llama-8B)": (200, 32, 8, False),
    "prefill 16384 (Llama-8B)": (16384, 32, 8, False),
}
HEAD, LAYERS, BLOCK = 128, 32, 16


def case(rows: int, heads: int, kv_heads: int, norm: bool) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(0)
    qkv = torch.randn(rows, (heads + 2 * kv_heads) * HEAD, device="cuda", dtype=torch.bfloat16, generator=gen)
    q, k, v = qkv.split([heads * HEAD, kv_heads * HEAD, kv_heads * HEAD], dim=-1)
    inv = 1.0 / (1e6 ** (torch.arange(0, HEAD, 2, dtype=torch.float32) / HEAD))
    cos_sin = torch.cat([torch.outer(torch.arange(4096.0), inv).cos(), torch.outer(torch.arange(4096.0), inv).sin()],
                        -1).cuda()
    pos = torch.randint(0, 4096, (rows,), device="cuda", generator=gen)
    blocks = rows // BLOCK + 8
    caches = [torch.empty(2, blocks, BLOCK, kv_heads, HEAD, dtype=torch.bfloat16, device="cuda") for _ in range(LAYERS)]
    slots = torch.randperm(blocks * BLOCK, device="cuda", generator=gen)[:rows]
    w = (torch.ones(HEAD, dtype=torch.bfloat16, device="cuda"),) * 2 if norm else (None, None)

    def two(i):
        qq, kk = (qk_norm_rotary(pos, q, k, HEAD, cos_sin, True, *w, 1e-6) if norm
                  else rotary_embedding(pos, q, k, HEAD, cos_sin, True))
        write_kv(kk.view(rows, kv_heads, HEAD), v.view(rows, kv_heads, HEAD), caches[i], slots)

    def one(i):
        rotary_write_kv(pos, q, k, v, caches[i], slots, HEAD, cos_sin, True, *w, 1e-6)

    row = {}
    for name, fn in (("two launches", two), ("one launch", one), ("two launches again", two),
                     ("one launch again", one)):
        row[name] = round(graph_ms(fn, LAYERS, reps=15) * 1000, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {"device": torch.cuda.get_device_name(), "us_per_layer": {}}
    for name, shape in CASES.items():
        results["us_per_layer"][name] = case(*shape)
        print(name, json.dumps(results["us_per_layer"][name]), flush=True)
    save_json(args.json, results)


if __name__ == "__main__":
    main()
