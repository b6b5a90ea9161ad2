"""Scheduler overhead per step: ``schedule()`` + ``update()``, no model.

Runner outputs are built outside the timer. Scenarios:
  decode-N  N running requests, all decoding (prompt 128 tokens, prefix caching on)
  mixed     256 decoding requests; 4 new 512-token prompts arrive every step (chunked
            prefill, 8192-token budget) and requests finish after 64 to 128 tokens
  mixed-fcst  the same with KV-forecast admission (the others admit greedily)

Run:  PYTHONPATH=core python benchmarks/bench_scheduler.py [--steps 300]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from plinth.config import SchedulerConfig
from plinth.sampling_params import SamplingParams
from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.outputs import RunnerOutput
from plinth.sched.request import Request
from plinth.sched.scheduler import Scheduler

BLOCK_SIZE = 16


def fake_runner_output(scheduler, out) -> RunnerOutput:
    """Sample a token for every request whose scheduled tokens reach its end (outside the timer)."""
    req_ids, sampled = [], []
    requests = scheduler.requests
    for rid, n in out.num_scheduled_tokens.items():
        request = requests[rid]
        req_ids.append(rid)
        done = request.num_computed_tokens + n == request.num_tokens
        sampled.append([(request.num_tokens * 7919) % 32000] if done else [])
    return RunnerOutput(req_ids, sampled)


def make_request(rng, rid, prompt_len, max_tokens) -> Request:
    prompt = [rng.randrange(32000) for _ in range(prompt_len)]
    return Request(rid, prompt, SamplingParams(max_tokens=max_tokens, ignore_eos=True))


def run(num_running, steps, arrivals_per_step=0, prompt_len=128, seed=0,
        admission="greedy") -> tuple[list[float], list[float]]:
    """Per-step (wall seconds, this thread's CPU seconds) of schedule() + update()."""
    rng = random.Random(seed)
    max_seqs = num_running + 64 if arrivals_per_step else num_running
    config = SchedulerConfig(max_num_seqs=max_seqs, max_num_batched_tokens=8192 if arrivals_per_step else 65536,
                             admission=admission)
    num_blocks = (num_running + 64) * ((prompt_len + 512 + steps) // BLOCK_SIZE + 2)
    scheduler = Scheduler(config, KVCacheManager(num_blocks, BLOCK_SIZE), max_model_len=4096)
    next_id = 0
    for _ in range(num_running):
        max_tokens = rng.randint(64, 128) if arrivals_per_step else 100_000
        scheduler.add_request(make_request(rng, f"req-{next_id}", prompt_len, max_tokens))
        next_id += 1
    while any(r.num_computed_tokens < r.num_prompt_tokens for r in scheduler.requests.values()):
        out = scheduler.schedule()  # prefill everything first (untimed)
        scheduler.update(out, fake_runner_output(scheduler, out))
    wall, cpu = [], []
    gc.collect()
    for _ in range(steps):
        for _ in range(arrivals_per_step):
            scheduler.add_request(make_request(rng, f"req-{next_id}", 512, rng.randint(64, 128)))
            next_id += 1
        t0, c0 = time.perf_counter(), time.thread_time()
        out = scheduler.schedule()
        t1, c1 = time.perf_counter(), time.thread_time()
        runner_output = fake_runner_output(scheduler, out)
        t2, c2 = time.perf_counter(), time.thread_time()
        scheduler.update(out, runner_output)
        t3, c3 = time.perf_counter(), time.thread_time()
        wall.append((t1 - t0) + (t3 - t2))
        cpu.append((c1 - c0) + (c3 - c2))
    return wall, cpu


def report(name, times) -> None:
    """Wall-clock p50/p99 and mean CPU time of this thread (robust when other processes share the cores)."""
    wall, cpu = times
    ms = sorted(t * 1e3 for t in wall)
    print(f"{name:<12} wall p50 {ms[len(ms) // 2]:6.3f} ms  p99 {ms[int(len(ms) * 0.99)]:6.3f} ms   "
          f"cpu mean {statistics.fmean(cpu) * 1e3:6.3f} ms  median {statistics.median(cpu) * 1e3:6.3f} ms"
          f"   ({len(ms)} steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    report("decode-256", run(256, args.steps))
    report("decode-1024", run(1024, args.steps))
    report("mixed", run(256, args.steps, arrivals_per_step=4))
    report("mixed-fcst", run(256, args.steps, arrivals_per_step=4, admission="forecast"))


if __name__ == "__main__":
    main()
