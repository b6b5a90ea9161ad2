"""Can a step's memory-bound decode work hide under compute-bound prompt GEMMs on a second stream?

The premise of dual-batch overlap (NanoFlow; vLLM's DBO for MoE): run a step's decode rows and its prompt tokens
as two sub-batches whose forwards go to two CUDA streams, so the decode attention (a KV stream at the read
ceiling) runs while the prompt tokens' GEMMs keep the tensor cores busy. Against it: each sub-batch reads the
weights on its own, and both kernels want every SM. This times, on Llama-3.1-8B's shapes over ``--layers``
distinct layers (CUDA graphs, so no host launch cost):

- ``decode``: the decode rows' layers (qkv, paged decode attention over T2's contexts, o, gate/up, SiLU, down);
- ``prompt``: the prompt tokens' layers (the same GEMMs and SiLU, no attention: it is small at these chunks);
- ``mixed``: what a mixed step does today: the GEMMs over decode rows and prompt tokens together, and the decode
  rows' attention;
- ``serial``: ``decode`` then ``prompt``; ``overlap``: ``decode`` and ``prompt`` on two streams at once (with the
  decode stream at high priority, and at equal priority).

    python benchmarks/bench_overlap.py --decode-rows 200 --prompt-tokens 512 1024 2048
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys

import torch
import torch.nn.functional as F
from bench_attention_configs import launch, make_batch, time_ms
from graph_timing import save_json
from plinth_triton.attention_plan import decode_launch

HIDDEN, HEADS, KV_HEADS, HEAD, INTER = 4096, 32, 8, 128, 14336
_KEEP: list = []


def make_layers(n: int) -> list[dict]:
    def w(rows, cols):
        return torch.randn(rows, cols, dtype=torch.bfloat16, device="cuda") * cols ** -0.5

    return [dict(qkv=w((HEADS + 2 * KV_HEADS) * HEAD, HIDDEN), o=w(HIDDEN, HEADS * HEAD),
                 gate_up=w(2 * INTER, HIDDEN), down=w(HIDDEN, INTER)) for _ in range(n)]


def mlp(x: torch.Tensor, layer: dict) -> torch.Tensor:
    h = F.linear(x, layer["gate_up"])
    return F.linear(F.silu(h[:, :INTER]) * h[:, INTER:], layer["down"])


def chain(layers, x, attention=None, decode_rows=0):
    """A forward's GEMM chain over ``layers``; ``attention[i]()`` runs layer i's decode attention, whose output
    stands in for the first ``decode_rows`` rows of the attention result."""

    def run():
        h = x
        for i, layer in enumerate(layers):
            qkv = F.linear(h, layer["qkv"])
            a = qkv[:, :HEADS * HEAD]
            if attention is not None:
                out = attention[i]()
                a = torch.cat([out.view(decode_rows, -1), a[decode_rows:]]) if decode_rows < x.shape[0] \
                    else out.view(decode_rows, -1)
            h = h + F.linear(a, layer["o"])
            h = h + mlp(h, layer)
        return h

    return run


def capture(fn, stream=None) -> torch.cuda.CUDAGraph:
    side = stream or torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # A capture stream of its own: cuBLAS keys its workspace by stream, and two graphs captured on torch's shared
    # capture stream replay into one workspace (replayed at once, they hang the GPU).
    with torch.cuda.graph(graph, stream=stream or torch.cuda.Stream()):
        fn()
    torch.cuda.synchronize()
    return graph


def concurrently(first: torch.cuda.CUDAGraph, second: torch.cuda.CUDAGraph, s1, s2):
    def run():
        main = torch.cuda.current_stream()
        s1.wait_stream(main)
        s2.wait_stream(main)
        with torch.cuda.stream(s1):
            first.replay()
        with torch.cuda.stream(s2):
            second.replay()
        main.wait_stream(s1)
        main.wait_stream(s2)

    return run


def on(stream, graph):
    """Replay ``graph`` on ``stream``, ordered after the current stream and before what follows on it."""
    def run():
        main = torch.cuda.current_stream()
        stream.wait_stream(main)
        with torch.cuda.stream(stream):
            graph.replay()
        main.wait_stream(stream)

    return run


def green_split(chains: dict, decode_sms: int, tokens: list[int]) -> dict:
    """Decode rows on ``decode_sms`` SMs and prompt tokens on the rest, each a green context (an SM partition)
    with its own stream; each chain captured on its partition's stream, timed alone and at once."""
    from torch.cuda.green_contexts import GreenContext

    total = torch.cuda.get_device_properties(0).multi_processor_count
    contexts = [GreenContext.create(num_sms=decode_sms, device_id=0),
                GreenContext.create(num_sms=total - decode_sms, device_id=0)]
    _KEEP.extend(contexts)  # a context destroyed under its stream's graphs fails their replays
    sd, sp = (c.Stream() for c in contexts)
    decode = capture(chains["decode"], sd)
    row = {"decode_ms": round(time_ms(on(sd, decode)), 3)}
    for n in tokens:
        prompt = capture(chains[n], sp)
        row[n] = {"prompt_ms": round(time_ms(on(sp, prompt)), 3),
                  "overlap_ms": round(time_ms(concurrently(decode, prompt, sd, sp)), 3)}
    return row


def attention_ops(n_layers: int, rows: int, ctx_lo: int, ctx_hi: int):
    tile_n, warps, stages = decode_launch(HEADS // KV_HEADS, HEAD, torch.bfloat16, rows, 1)
    ops, kv_bytes = [], 0
    for i in range(n_layers):
        q, kv, table, seq_lens, qsl, nbytes = make_batch(rows, ctx_lo, ctx_hi, HEADS, KV_HEADS, HEAD, seed=i)
        kv_bytes += nbytes
        run = launch(q, kv, table, seq_lens, qsl, tile_n, warps, stages, 1, ordered=True)

        def op(run=run, q=q):
            run()  # writes its own output buffer; q has that output's shape and stands in for it
            return q
        ops.append(op)
    return ops, kv_bytes


def progress(tokens: int, what: str, ms: float) -> float:
    print(f"  {tokens} prompt tokens, {what}: {ms:.3f} ms", file=sys.stderr, flush=True)
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--decode-rows", type=int, default=200)
    parser.add_argument("--ctx", type=int, nargs=2, default=[1024, 2048])
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--json")
    parser.add_argument("--green", type=int, nargs="*", default=[],
                        help="also split the SMs: this many for the decode rows, the rest for the prompt tokens")
    parser.add_argument("--watchdog", type=float, default=0, help="dump every thread's stack after this many seconds")
    args = parser.parse_args()
    if args.watchdog:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    torch.manual_seed(0)
    layers = make_layers(args.layers)
    attention, kv_bytes = attention_ops(args.layers, args.decode_rows, *args.ctx)
    xd = torch.randn(args.decode_rows, HIDDEN, dtype=torch.bfloat16, device="cuda")
    decode = capture(chain(layers, xd, attention, args.decode_rows))
    attn_only = capture(lambda: [op() for op in attention])
    hi, lo = torch.cuda.Stream(priority=-1), torch.cuda.Stream(priority=0)
    eq1, eq2 = torch.cuda.Stream(), torch.cuda.Stream()
    t_decode = time_ms(decode.replay)
    t_attn = time_ms(attn_only.replay)
    result = {"layers": args.layers, "decode_rows": args.decode_rows, "ctx": args.ctx, "device": torch.cuda.get_device_name(),
              "decode_ms": round(t_decode, 3), "decode_attention_ms": round(t_attn, 3),
              "attention_TB_s": round(kv_bytes / t_attn / 1e9, 3), "by_prompt_tokens": {}}
    print(json.dumps({k: v for k, v in result.items() if k != "by_prompt_tokens"}), flush=True)
    for tokens in args.prompt_tokens:
        xp = torch.randn(tokens, HIDDEN, dtype=torch.bfloat16, device="cuda")
        xm = torch.randn(args.decode_rows + tokens, HIDDEN, dtype=torch.bfloat16, device="cuda")
        prompt = capture(chain(layers, xp))
        mixed = capture(chain(layers, xm, attention, args.decode_rows))
        t_prompt = progress(tokens, "prompt", time_ms(prompt.replay))
        t_mixed = progress(tokens, "mixed", time_ms(mixed.replay))
        t_serial = progress(tokens, "serial", time_ms(lambda p=prompt: (decode.replay(), p.replay())))
        t_hi = progress(tokens, "overlap, decode high", time_ms(concurrently(decode, prompt, hi, lo)))
        t_hi_prompt = progress(tokens, "overlap, prompt high", time_ms(concurrently(prompt, decode, hi, lo)))
        t_eq = progress(tokens, "overlap, equal", time_ms(concurrently(decode, prompt, eq1, eq2)))
        row = {"prompt_ms": round(t_prompt, 3), "mixed_ms": round(t_mixed, 3), "serial_ms": round(t_serial, 3),
               "overlap_decode_high_ms": round(t_hi, 3), "overlap_prompt_high_ms": round(t_hi_prompt, 3),
               "overlap_equal_ms": round(t_eq, 3),
               "best_overlap_vs_mixed": round(min(t_hi, t_hi_prompt, t_eq) / t_mixed, 3)}
        result["by_prompt_tokens"][tokens] = row
        print(tokens, json.dumps(row), flush=True)
    chains = {"decode": chain(layers, xd, attention, args.decode_rows)}
    chains.update({n: chain(layers, torch.randn(n, HIDDEN, dtype=torch.bfloat16, device="cuda"))
                   for n in args.prompt_tokens})
    result["green"] = {}
    for sms in args.green:
        try:
            result["green"][sms] = green_split(chains, sms, args.prompt_tokens)
        except Exception as e:  # noqa: BLE001 -- report what the build's green contexts refuse, then go on
            result["green"][sms] = f"{type(e).__name__}: {e}"
        print("green", sms, "SMs for decode:", json.dumps(result["green"][sms]), flush=True)
    save_json(args.json, result)


if __name__ == "__main__":
    main()
