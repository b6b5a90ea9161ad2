"""Admission rules compared on the real ``Scheduler`` with a modelled device (no GPU, a few seconds).

A model, not a measurement (``step_seconds``): each step costs a fixed 1.2-1.5 ms, the weights read
once (15 GB at 3.0 TB/s), the KV of every decode row's context (131,072 B a token at 2.75-2.9 TB/s),
and in steps with prompt tokens every row at the prefill GEMM rate plus causal attention
(Llama-3.1-8B on the H100). Calibrated on T1 and T2 under greedy admission, it gave 3,802 and 7,330
out tok/s against the measured 3,815 and 7,252; it then put forecast admission at 7,849 on T2
(measured in one call: 7,267 greedy, 7,665 forecast). Two scenarios:

- ``offline``: T1/T2 all at once (``plinth.bench.workloads``): steps, preemptions, prompt tokens
  computed (recompute included), modelled out tok/s. ``--cost overlap`` prices a step's linears as
  the larger of their weight stream and their compute (measured decode GEMMs at M = 64-256, 19.3 us a
  row at the prefill rate), which is what decides whether prompt tokens riding along with decode
  rows pay; ``--pace N`` admits at most N prompt tokens a step (CUDA round 13: +1 % on T1, +3 % on T2
  in this model, which reads T1/T2 2-4 % above the measured figures). Do not trust it there: CUDA round 17
  measured T2 with a 768-token step budget (modelled +2.7 %) at -1.4 %, because a mixed step's GEMMs cost the
  decode rows' plus the prompt tokens' (``bench_overlap.py``), not the prompt tokens at the large-prefill rate.
- ``serve``: chat-like Poisson arrivals with outputs ended by EOS (exponential lengths, capped by
  ``max_tokens``), under KV pressure: modelled out tok/s, TTFT p50/p99, preemptions.

    PYTHONPATH=core python benchmarks/sim_admission.py offline --workload T2
    PYTHONPATH=core python benchmarks/sim_admission.py offline --workload T2 --blocks 27102 --cost overlap \
        --admission forecast --pace 0 1024 512 256
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


def overlap_seconds(prompt: int, decode_rows: int, sampled: int, context: int, attention_flops: float) -> float:
    """A step whose linears cost the larger of their weight stream and their compute: cuBLAS measured 5.39,
    5.70, 6.11, 6.57 ms for 32 layers at M = 64, 128, 200, 256 (≈ 4.65 + 0.0075 M), and 19.3 us a row at the
    prefill rate; the LM head on the sampled rows; decode KV at 2.94 TB/s, prompt attention at 300 TFLOP/s;
    norms, SiLU and rotary at 1.6 us a row plus 0.3 ms."""
    rows = prompt + decode_rows
    linears = max(4.65e-3 + 7.5e-6 * rows, 19.3e-6 * rows)
    head = max(0.35e-3, 1.45e-6 * sampled)
    attention = context * KV_BYTES_PER_TOKEN / 2.94e12 + attention_flops / 300e12
    return linears + head + attention + 0.3e-3 + 1.6e-6 * rows


def step_seconds(scheduler: Scheduler, out, fixed: float, kv_bandwidth: float, cost: str = "serial") -> float:
    """The modelled device time of one scheduled step (``device_seconds`` or ``overlap_seconds`` of its rows)."""
    context = decode_rows = prompt = sampled = 0
    attention_flops = 0.0
    for rid, n in out.num_scheduled_tokens.items():
        request = scheduler.requests[rid]
        done = request.num_computed_tokens
        if n == 1 and done >= request.num_prompt_tokens:
            decode_rows += 1
            context += done + 1
            sampled += 1
        else:
            prompt += n
            attention_flops += prompt_attention_flops(n, done)
            sampled += done + n >= request.num_prompt_tokens
    if cost == "overlap":
        return overlap_seconds(prompt, decode_rows, sampled, context, attention_flops)
    return device_seconds(prompt, decode_rows, context, attention_flops, fixed, kv_bandwidth)


def pace_prompts(scheduler: Scheduler, tokens: int) -> None:
    """Admit at most ``tokens`` prompt tokens a step (chunks of running prompts count first)."""
    admit = scheduler._schedule_waiting

    def paced(budget: int, num_scheduled: dict[str, int]):
        chunks = sum(n for n in num_scheduled.values() if n > 1)
        return admit(min(budget, max(0, tokens - chunks)), num_scheduled)

    scheduler._schedule_waiting = paced


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


def offline(admission: str, workload: str, blocks: int, max_num_seqs: int, budget: int, cost: str = "serial",
            pace: int | None = None) -> None:
    from plinth.bench.workloads import build_workload

    w = build_workload(workload, None)
    scheduler = Scheduler(SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=budget,
                                          admission=admission),
                          KVCacheManager(blocks, 16, enable_prefix_caching=False), 4096)
    if pace:
        pace_prompts(scheduler, pace)
    for i, r in enumerate(w.requests):
        scheduler.add_request(Request(str(i), r.prompt_token_ids,
                                      SamplingParams(max_tokens=r.max_tokens, ignore_eos=True), arrival_time=i))
    seconds = steps = prompt_tokens = 0
    while scheduler.has_unfinished_requests():
        out = scheduler.schedule()
        seconds += step_seconds(scheduler, out, 1.2e-3, 2.75e12, cost)
        prompt_tokens += sum(n for n in out.num_scheduled_tokens.values() if n > 1)
        scheduler.update(out, sampled_ids(scheduler, out, None))
        steps += 1
    out_tokens = sum(r.max_tokens for r in w.requests)
    print(f"{workload} {admission:8s} {cost} cost, pace {pace}: {steps} steps, {scheduler.num_preemptions} preemptions, "
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
    off.add_argument("--cost", choices=("serial", "overlap"), default="serial")
    off.add_argument("--pace", type=int, nargs="*", default=[0], help="prompt tokens a step at most (0: no cap)")
    off.add_argument("--admission", nargs="*", default=["greedy", "forecast"])
    srv = sub.add_parser("serve")
    srv.add_argument("--rates", type=float, nargs="+", default=[4.0, 8.0, 16.0])
    srv.add_argument("--blocks", type=int, default=8_000)
    srv.add_argument("--requests", type=int, default=1_500)
    srv.add_argument("--mean-output", type=int, default=600)
    srv.add_argument("--max-tokens", type=int, default=2048)
    args = ap.parse_args()
    if args.scenario == "offline":
        for admission in args.admission:
            for pace in args.pace:
                offline(admission, args.workload, args.blocks, args.max_num_seqs, args.budget, args.cost, pace or None)
    if args.scenario == "serve":
        for rate in args.rates:
            for admission in ("greedy", "forecast"):
                serve(admission, rate, args.blocks, args.requests, args.mean_output, args.max_tokens, seed=0)


if __name__ == "__main__":
    main()
