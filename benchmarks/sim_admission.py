"""Admission rules compared on the real ``Scheduler`` with a modelled device (no GPU, a few seconds).

A model, not a measurement (``step_seconds``): each step costs a fixed 1.2-1.5 ms, the weights read
once (15 GB at 3.0 TB/s), the KV of every decode row's context (131,072 B a token at 2.75-2.9 TB/s),
and in steps with prompt tokens every row at the prefill GEMM rate plus causal attention
(Llama-3.1-8B on the H100). Calibrated on T1 and T2 under greedy admission, it gave 3,802 and 7,330
out tok/s against the measured 3,815 and 7,252; it then put forecast admission at 7,849 on T2
(measured in one call: 7,267 greedy, 7,665 forecast). Two scenarios:

- ``offline``: T1/T2 all at once (``plinth.bench.workloads``): steps, preemptions, prompt tokens
  computed (recompute included), modelled out tok/s.
- ``serve``: chat-like Poisson arrivals with outputs ended by EOS (exponential lengths, capped by
  ``max_tokens``), under KV pressure: modelled out tok/s, TTFT p50/p99, preemptions.

    PYTHONPATH=core python benchmarks/sim_admission.py offline --workload T2
    PYTHONPATH=core python benchmarks/sim_admission.py serve --blocks 8000 --rates 4 8 16
"""

from __future__ import annotations

import argparse
import random

from plinth.config import SchedulerConfig
from plinth.sampling_params import SamplingParams
from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.outputs import RunnerOutput
from plinth.sched.request import Request
from plinth.sched.scheduler import Scheduler

KV_BYTES_PER_TOKEN = 131_072  # Llama-3.1-8B, bf16
EOS = 2


def prompt_attention_flops(num_tokens: int, done: int) -> float:
    """Causal attention FLOPs of ``num_tokens`` prompt tokens after ``done`` computed ones (Llama-8B heads)."""
    return num_tokens * (done + num_tokens / 2) * 4 * 32 * 128 * 32


def device_seconds(prompt: int, decode_rows: int, context: int, attention_flops: float, fixed: float,
                   kv_bandwidth: float) -> float:
    """The modelled device time of a step: ``fixed``, the weights, each decode row's context of KV at
    ``kv_bandwidth``; with prompt tokens, every row at the prefill GEMM rate (16 GFLOP a token at 725
    TFLOP/s) plus causal attention at 300 TFLOP/s."""
    seconds = fixed + 15e9 / 3.0e12 + context * KV_BYTES_PER_TOKEN / kv_bandwidth + attention_flops / 300e12
    if prompt:
        seconds += (prompt + decode_rows) * 16e9 / 725e12
    return seconds


def step_seconds(scheduler: Scheduler, out, fixed: float, kv_bandwidth: float) -> float:
    """The modelled device time of one scheduled step (``device_seconds`` of its rows)."""
    context = decode_rows = prompt = 0
    attention_flops = 0.0
    for rid, n in out.num_scheduled_tokens.items():
        request = scheduler.requests[rid]
        done = request.num_computed_tokens
        if n == 1 and done >= request.num_prompt_tokens:
            decode_rows += 1
            context += done + 1
        else:
            prompt += n
            attention_flops += prompt_attention_flops(n, done)
    return device_seconds(prompt, decode_rows, context, attention_flops, fixed, kv_bandwidth)


def sampled_ids(scheduler: Scheduler, out, stop_at: dict[str, int] | None) -> RunnerOutput:
    """A token for every request whose scheduled tokens reach its end; EOS once it reaches ``stop_at``."""
    ids, sampled = list(out.num_scheduled_tokens), []
    for rid in ids:
        request = scheduler.requests[rid]
        if request.num_computed_tokens + out.num_scheduled_tokens[rid] < request.num_tokens:
            sampled.append([])
        elif stop_at is not None and request.num_output_tokens + 1 >= stop_at[rid]:
            sampled.append([EOS])
        else:
            sampled.append([5])
    return RunnerOutput(ids, sampled)


def offline(admission: str, workload: str, blocks: int, max_num_seqs: int, budget: int) -> None:
    from plinth.bench.workloads import build_workload

    w = build_workload(workload, None)
    scheduler = Scheduler(SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=budget,
                                          admission=admission),
                          KVCacheManager(blocks, 16, enable_prefix_caching=False), 4096)
    for i, r in enumerate(w.requests):
        scheduler.add_request(Request(str(i), r.prompt_token_ids,
                                      SamplingParams(max_tokens=r.max_tokens, ignore_eos=True), arrival_time=i))
    seconds = steps = prompt_tokens = 0
    while scheduler.has_unfinished_requests():
        out = scheduler.schedule()
        seconds += step_seconds(scheduler, out, 1.2e-3, 2.75e12)
        prompt_tokens += sum(n for n in out.num_scheduled_tokens.values() if n > 1)
        scheduler.update(out, sampled_ids(scheduler, out, None))
        steps += 1
    out_tokens = sum(r.max_tokens for r in w.requests)
    print(f"{workload} {admission:8s}: {steps} steps, {scheduler.num_preemptions} preemptions, "
          f"{prompt_tokens:,} prompt tokens computed ({w.input_tokens:,} in the workload), "
          f"modelled {out_tokens / seconds:,.0f} out tok/s")


def serve(admission: str, rate: float, blocks: int, n: int, mean_out: int, max_tokens: int, seed: int) -> None:
    rng = random.Random(seed)
    scheduler = Scheduler(SchedulerConfig(max_num_seqs=256, max_num_batched_tokens=8192, admission=admission),
                          KVCacheManager(blocks, 16, enable_prefix_caching=False), 8192)
    arrivals, at = [], 0.0
    for i in range(n):
        at += rng.expovariate(rate)
        prompt = [rng.randrange(3, 30000) for _ in range(rng.randint(100, 1500))]
        length = min(max_tokens, max(1, int(rng.expovariate(1 / mean_out))))
        arrivals.append((at, Request(str(i), prompt, SamplingParams(max_tokens=max_tokens), eos_token_id=EOS,
                                     arrival_time=at), length))
    stop_at = {r.request_id: length for _, r, length in arrivals}
    arrived = {r.request_id: t for t, r, _ in arrivals}
    now, k, ttft = 0.0, 0, {}
    while k < n or scheduler.has_unfinished_requests():
        while k < n and arrivals[k][0] <= now:
            scheduler.add_request(arrivals[k][1])
            k += 1
        if not scheduler.has_unfinished_requests():
            now = arrivals[k][0]
            continue
        out = scheduler.schedule()
        now += step_seconds(scheduler, out, 1.5e-3, 2.9e12)
        for o in scheduler.update(out, sampled_ids(scheduler, out, stop_at)):
            ttft.setdefault(o.request_id, now - arrived[o.request_id])
    times = sorted(ttft.values())
    print(f"serve {admission:8s} {rate:5.1f} req/s: modelled {sum(stop_at.values()) / now:7,.0f} out tok/s, "
          f"TTFT p50 {times[len(times) // 2] * 1e3:8,.0f} ms p99 {times[int(len(times) * 0.99)] * 1e3:8,.0f} ms, "
          f"{scheduler.num_preemptions} preemptions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="scenario", required=True)
    off = sub.add_parser("offline")
    off.add_argument("--workload", default="T2")
    off.add_argument("--blocks", type=int, default=26_110)  # T2's KV blocks on the H100 (round 7)
    off.add_argument("--max-num-seqs", type=int, default=256)
    off.add_argument("--budget", type=int, default=16_384)
    srv = sub.add_parser("serve")
    srv.add_argument("--rates", type=float, nargs="+", default=[4.0, 8.0, 16.0])
    srv.add_argument("--blocks", type=int, default=8_000)
    srv.add_argument("--requests", type=int, default=1_500)
    srv.add_argument("--mean-output", type=int, default=600)
    srv.add_argument("--max-tokens", type=int, default=2048)
    args = ap.parse_args()
    for admission in ("greedy", "forecast"):
        if args.scenario == "offline":
            offline(admission, args.workload, args.blocks, args.max_num_seqs, args.budget)
    if args.scenario == "serve":
        for rate in args.rates:
            for admission in ("greedy", "forecast"):
                serve(admission, rate, args.blocks, args.requests, args.mean_output, args.max_tokens, seed=0)


if __name__ == "__main__":
    main()
