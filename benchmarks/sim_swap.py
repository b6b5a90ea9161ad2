"""What swapping KV to host memory could buy T2: a standalone model of the offline run (no GPU, seconds).

A model, not a measurement. T2's 1,000 requests (1,024 prompt / 1,024 output tokens) start together on a
cache of ``--blocks`` 16-token blocks. Three rules, each under the device cost model of
``sim_admission.py`` (fixed 1.35 ms, 15 GB of weights at 3.0 TB/s, each decode row's KV at 2.9 TB/s,
steps with prompt tokens at the prefill GEMM rate):

- ``forecast``: admit only when every running request fits at its final length (plinth's default):
  synchronous waves of ~200 requests.
- ``recompute``: admit while the next tokens fit; when the cache runs out, preempt the newest request and
  compute its tokens again later (vLLM's rule).
- ``swap``: the same, but the preempted request's KV goes to ``--host-gib`` of pinned host memory at
  ``--pcie-gbs`` and comes back before it resumes (vLLM v0's ``swap_space``); the copies either stall
  the step (``serial``) or hide under it (``overlapped``).

    python benchmarks/sim_swap.py [--blocks 26110] [--host-gib 4 64] [--pcie-gbs 25]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from sim_admission import KV_BYTES_PER_TOKEN, device_seconds, prompt_attention_flops

BLOCK = 16


@dataclass
class Req:
    prompt: int
    output: int
    computed: int = 0  # tokens whose KV is in the device cache
    generated: int = 0
    state: str = "waiting"  # waiting | running | swapped | done
    admitted_at: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt + self.generated

    @property
    def decoding(self) -> bool:
        """Its next step is one decode row (the last sampled token is not in the cache yet)."""
        return self.generated > 0 and self.tokens - self.computed == 1

    @property
    def blocks(self) -> int:
        return math.ceil(self.computed / BLOCK)


def simulate(rule: str, blocks: int, host_gib: float = 0.0, pcie_gbs: float = 25.0, overlapped: bool = False,
             num: int = 1000, budget: int = 16384, max_seqs: int = 256) -> dict:
    reqs = [Req(1024, 1024) for _ in range(num)]
    host_blocks = int(host_gib * 2**30 // (BLOCK * KV_BYTES_PER_TOKEN))
    free, host_free = blocks, host_blocks
    clock, steps, decode_steps, decode_rows_total, swapped_bytes, recomputed = 0.0, 0, 0, 0, 0, 0
    order = 0
    while any(r.state != "done" for r in reqs):
        running = [r for r in reqs if r.state == "running"]
        tokens_left = budget - sum(1 for r in running if r.decoding)
        swap_bytes = 0
        # resume swapped requests first, then admit waiting ones
        for r in [r for r in reqs if r.state == "swapped"] + [r for r in reqs if r.state == "waiting"]:
            if len(running) >= max_seqs or tokens_left <= 0:
                break
            if r.state == "swapped":
                need = r.blocks + 1
                if need > free:
                    break
                free -= r.blocks
                host_free += r.blocks
                swap_bytes += r.computed * KV_BYTES_PER_TOKEN
                tokens_left -= 1
            else:
                if rule == "forecast":
                    final = sum(math.ceil((x.prompt + x.output) / BLOCK) for x in running)
                    if final + math.ceil((r.prompt + r.output) / BLOCK) > blocks:
                        break
                elif math.ceil(min(r.tokens, tokens_left) / BLOCK) > free:
                    break
                tokens_left -= min(r.tokens - r.computed, tokens_left)
            r.state, r.admitted_at = "running", order
            order += 1
            running.append(r)
        # schedule: decode rows one token, prompts a chunk; grow the cache, preempting the newest on overflow
        prompt_tokens = decode_rows = context = 0
        attention_flops = 0.0
        budget_left = budget
        for r in sorted(running, key=lambda x: x.admitted_at):
            if r.state != "running":
                continue
            decoding = r.decoding
            n = 1 if decoding else min(r.tokens - r.computed, budget_left)
            if n <= 0:
                continue
            need = math.ceil((r.computed + n) / BLOCK) - r.blocks
            while need > free:
                victims = [x for x in running if x.state == "running" and x is not r]
                if not victims:
                    break
                v = max(victims, key=lambda x: x.admitted_at)
                free += v.blocks
                if rule == "swap" and v.blocks <= host_free:
                    host_free -= v.blocks
                    swap_bytes += v.computed * KV_BYTES_PER_TOKEN
                    v.state = "swapped"
                else:
                    recomputed += v.computed
                    v.computed, v.state = 0, "waiting"
            if need > free:
                continue
            free -= need
            if decoding:
                decode_rows += 1
                context += r.computed + 1
            else:
                prompt_tokens += n
                attention_flops += prompt_attention_flops(n, r.computed)
            budget_left -= n
            r.computed += n
            if r.computed >= r.tokens:  # the step's last token of the request: one new token sampled
                r.generated += 1
                if r.generated >= r.output:
                    r.state = "done"
                    free += r.blocks
        seconds = device_seconds(prompt_tokens, decode_rows, context, attention_flops, 1.35e-3, 2.9e12)
        transfer = swap_bytes / (pcie_gbs * 1e9)
        clock += max(seconds, transfer) if overlapped else seconds + transfer
        swapped_bytes += swap_bytes
        steps += 1
        if decode_rows and not prompt_tokens:
            decode_steps += 1
            decode_rows_total += decode_rows
    return {"out_tok_s": round(num * 1024 / clock), "seconds": round(clock, 1), "steps": steps,
            "decode_steps": decode_steps, "mean_decode_batch": round(decode_rows_total / max(decode_steps, 1), 1),
            "swapped_GB": round(swapped_bytes / 1e9, 1), "recomputed_tokens": recomputed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=26110)
    ap.add_argument("--host-gib", type=float, nargs="+", default=[4.0, 16.0, 64.0])
    ap.add_argument("--pcie-gbs", type=float, default=25.0)
    args = ap.parse_args()
    print("forecast ", simulate("forecast", args.blocks))
    print("recompute", simulate("recompute", args.blocks))
    for gib in args.host_gib:
        for overlapped in (False, True):
            print(f"swap {gib:g} GiB {'overlapped' if overlapped else 'serial'}",
                  simulate("swap", args.blocks, gib, args.pcie_gbs, overlapped))


if __name__ == "__main__":
    main()
