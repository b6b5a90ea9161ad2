"""Where a throughput run's wall time goes: device busy vs idle, kernels by name, prefill vs decode.

Runs one BENCHMARKS.md workload through ``LLM.generate`` (same set-up as ``plinth bench
throughput``) under ``torch.profiler`` with device activity only (CUPTI; no host-op
recording, so the host path runs at its normal speed), then reports from the trace:

- wall time, device-busy time (union of kernel and copy intervals) and idle time;
- idle time split by step kind (prefill/mixed steps vs uniform-decode steps), from a
  host timeline of ``Scheduler.schedule`` calls;
- device time per kernel name (top 25), grouped coarsely (attention, GEMM, sampling, ...).

    python benchmarks/profile_step_timeline.py --workload T3 --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import warnings
from collections import defaultdict

GROUPS = (("attention", ("attn", "attention")), ("gemm", ("gemm", "gemv", "sm90", "cutlass", "xmma", "splitk", "nvjet", "gated_linear")),
          ("sampling", ("sample", "argmax", "softmax", "exponential")), ("norm", ("rms", "norm")),
          ("rotary", ("rotary", "rope")), ("kv_write", ("write_kv", "reshape_and_cache", "kv_write")),
          ("act", ("silu", "act_and_mul")), ("copy", ("memcpy", "copy", "memset", "index", "gather")))


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def merge(intervals):
    """Union length and the merged list of (start, end) intervals."""
    merged = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1][1] = e
        else:
            merged.append([s, e])
    return merged


def _kind_lookup(timeline, t0_ns: int, first_us: float):
    """``ts -> step kind`` of the step scheduled last before ``ts`` (trace µs, aligned at the first activity)."""
    import bisect

    starts = [(ns - t0_ns) / 1e3 + first_us for ns, _, _ in timeline]
    kinds = ["decode" if tok == req and tok else "prefill_or_mixed" for _, tok, req in timeline]

    def kind_at(ts: float) -> str:
        j = bisect.bisect_right(starts, ts) - 1
        return kinds[max(j, 0)] if kinds else "decode"
    return kind_at


def _host_phases(timeline, schedule_ms, launches, updates, j: int) -> list[dict]:
    """The host's loop around step j (steps j-2 .. j+1), in ms: the period from one step's schedule to the
    next's, and in it launching the step, waiting for the previous step's samples, applying them (update),
    scheduling the next step and the rest (output handling, the engine's bookkeeping): where a stall sat."""
    import bisect

    update_starts = [t for t, _ in updates]
    rows = []
    for k in range(max(j - 2, 1), min(j + 2, len(timeline) - 1, len(launches))):
        start, nxt = timeline[k][0], timeline[k + 1][0]
        u = bisect.bisect_left(update_starts, start)
        phases = {"launch": launches[k][1], "wait_prev": launches[k - 1][2],
                  "update": sum(ms for t, ms in updates[u:] if t < nxt), "schedule_next": schedule_ms[k + 1]}
        period = (nxt - start) / 1e6
        rows.append({"step": k, "period": round(period, 2), **{n: round(v, 2) for n, v in phases.items()},
                     "rest": round(period - sum(phases.values()), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="T3")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--num-requests", type=int)
    ap.add_argument("--max-num-seqs", type=int, help="default: the platform's")
    ap.add_argument("--json")
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from plinth.bench.runner import BenchOptions, _make_llm, _params
    from plinth.bench.workloads import build_workload

    workload = build_workload(args.workload, args.num_requests)
    llm, _ = _make_llm(workload, BenchOptions(device=args.device, max_num_seqs=args.max_num_seqs))
    warm = workload.requests[:4]
    llm.generate([{"prompt_token_ids": r.prompt_token_ids} for r in warm],
                 [_params(workload, 16) for r in warm])
    scheduler = llm.llm_engine.engine.scheduler
    timeline: list[tuple[float, int, int]] = []  # (perf_counter ns at schedule, tokens, requests)
    schedule = scheduler.schedule

    schedule_ms: list[float] = []

    def timed_schedule():
        t = time.perf_counter_ns()
        out = schedule()
        now = time.perf_counter_ns()
        timeline.append((now, out.total_num_scheduled_tokens, len(out.num_scheduled_tokens)))
        schedule_ms.append((now - t) / 1e6)
        return out

    scheduler.schedule = timed_schedule
    runner = llm.llm_engine.runner
    launches: list[tuple[float, float, float]] = []  # (start ns, launch ms, wait-for-result ms) per step
    execute_async = runner.execute_async

    def timed_execute_async(scheduler_output):
        t = time.perf_counter_ns()
        handle = execute_async(scheduler_output)
        launched = (time.perf_counter_ns() - t) / 1e6
        result = handle.result

        def timed_result():
            w = time.perf_counter_ns()
            out = result()
            launches[index] = (t, launched, (time.perf_counter_ns() - w) / 1e6)
            return out

        index = len(launches)
        launches.append((t, launched, 0.0))
        handle.result = timed_result
        return handle

    runner.execute_async = timed_execute_async
    updates: list[tuple[int, float]] = []  # (start ns, ms) of each Scheduler.update: applying a step's samples
    update = scheduler.update

    def timed_update(scheduler_output, runner_output):
        t = time.perf_counter_ns()
        out = update(scheduler_output, runner_output)
        updates.append((t, (time.perf_counter_ns() - t) / 1e6))
        return out

    scheduler.update = timed_update
    gc_pauses: list[tuple[int, int, int]] = []  # (start ns, end ns, generation) of each collection

    gc_started = 0

    def on_gc(phase, info):
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter_ns()
        else:
            gc_pauses.append((gc_started, time.perf_counter_ns(), info["generation"]))

    gc.callbacks.append(on_gc)
    prompts = [{"prompt_token_ids": r.prompt_token_ids} for r in workload.requests]
    params = [_params(workload, r.max_tokens) for r in workload.requests]
    torch.cuda.synchronize()
    mem_before = torch.cuda.memory_stats()
    with profile(activities=[ProfilerActivity.CUDA]) as prof, warnings.catch_warnings(record=True) as syncs:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")  # every synchronizing CUDA call in the step loop, with its line
        t0_ns = time.perf_counter_ns()
        outputs = llm.generate(prompts, params)
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
        t1_ns = time.perf_counter_ns()
    gc.callbacks.remove(on_gc)
    mem_after = torch.cuda.memory_stats()
    allocator = {k: mem_after.get(k, 0) - mem_before.get(k, 0) for k in
                 ("num_alloc_retries", "num_device_alloc", "num_device_free", "num_sync_all_streams", "num_ooms")}
    sync_sites: dict[str, int] = defaultdict(int)
    for w in syncs:
        if "synchroniz" in str(w.message):
            sync_sites[f"{os.path.basename(w.filename)}:{w.lineno}"] += 1
    wall = (t1_ns - t0_ns) / 1e9
    out_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") in
              ("kernel", "gpu_memcpy", "gpu_memset")]
    by_name: dict[str, float] = defaultdict(float)
    by_group: dict[str, float] = defaultdict(float)
    for e in events:
        by_name[e["name"][:90]] += e["dur"]
        by_group[group_of(e["name"]) if e["cat"] == "kernel" else "copy"] += e["dur"]
    merged = merge([(e["ts"], e["ts"] + e["dur"]) for e in events])
    kind_at = _kind_lookup(timeline, t0_ns, merged[0][0])
    by_kind_group: dict[str, dict[str, float]] = {"decode": defaultdict(float), "prefill_or_mixed": defaultdict(float)}
    prefill_kernels: dict[str, float] = defaultdict(float)
    decode_kernels: dict[str, float] = defaultdict(float)
    for e in events:
        kind = kind_at(e["ts"])
        group = group_of(e["name"]) if e["cat"] == "kernel" else "copy"
        by_kind_group[kind][group] += e["dur"]
        (prefill_kernels if kind != "decode" else decode_kernels)[e["name"][:90]] += e["dur"]
    busy_us = sum(e - s for s, e in merged)
    # align the trace clock (µs) with perf_counter: the first and last device activity bound the run
    first_us, last_us = merged[0][0], merged[-1][1]
    # device idle between consecutive busy intervals, attributed to the step kind scheduled last
    # before the gap (host timeline mapped onto the trace by the run's start)
    steps = [((ns - t0_ns) / 1e3 + first_us, tok, req) for ns, tok, req in timeline]
    idle = {"decode": 0.0, "prefill_or_mixed": 0.0}
    busy = {"decode": 0.0, "prefill_or_mixed": 0.0}
    j = 0
    prev_end = None
    for s, e in merged:
        while j + 1 < len(steps) and steps[j + 1][0] <= s:
            j += 1
        kind = "decode" if steps and steps[j][1] == steps[j][2] else "prefill_or_mixed"
        if prev_end is not None:
            idle[kind] += s - prev_end
        busy[kind] += e - s
        prev_end = e
    decode_steps = sum(1 for _, tok, req in timeline if tok == req and tok)
    # the largest device gaps: when they happen and which steps were scheduled around them
    gaps = sorted(((merged[i + 1][0] - merged[i][1], merged[i][1]) for i in range(len(merged) - 1)), reverse=True)
    starts = [(ns - t0_ns) / 1e3 + first_us for ns, _, _ in timeline]
    import bisect

    largest_gaps = []
    pauses = [((a - t0_ns) / 1e3 + first_us, (b - t0_ns) / 1e3 + first_us, g) for a, b, g in gc_pauses]
    for gap, at in gaps[:15]:
        j = max(bisect.bisect_right(starts, at) - 1, 0)
        # collections running within the gap (or the 2 ms before it: the host falls behind the device)
        in_gap = [round((b - a) / 1e3, 2) for a, b, _ in pauses if b >= at - 2e3 and a <= at + gap]
        largest_gaps.append({"gap_ms": round(gap / 1e3, 3), "at_s": round((at - first_us) / 1e6, 3), "step": j,
                             "step_tokens_reqs": timeline[j][1:] if timeline else None, "gc_ms": in_gap,
                             "host_phases_ms": _host_phases(timeline, schedule_ms, launches, updates, j)})
    gap_hist = {f">{t}ms": round(sum(g for g, _ in gaps if g > t * 1e3) / 1e6, 3) for t in (0.05, 0.2, 1, 5)}
    result = {
        "workload": workload.name, "output_tokens": out_tokens, "wall_s": round(wall, 3),
        "output_tok_s": round(out_tokens / wall, 1),
        "device_busy_s": round(busy_us / 1e6, 3), "device_span_s": round((last_us - first_us) / 1e6, 3),
        "device_idle_s": round((last_us - first_us - busy_us) / 1e6, 3),
        "busy_s_by_step_kind": {k: round(v / 1e6, 3) for k, v in busy.items()},
        "idle_s_by_step_kind": {k: round(v / 1e6, 3) for k, v in idle.items()},
        "steps": len(timeline), "decode_steps": decode_steps,
        "device_s_by_group": {k: round(v / 1e6, 3) for k, v in sorted(by_group.items(), key=lambda kv: -kv[1])},
        "top_kernels_s": {k: round(v / 1e6, 4) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:25]},
        "device_s_by_step_kind_and_group": {
            kind: {k: round(v / 1e6, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}
            for kind, groups in by_kind_group.items()},
        "top_prefill_kernels_s": {k: round(v / 1e6, 4)
                                  for k, v in sorted(prefill_kernels.items(), key=lambda kv: -kv[1])[:12]},
        "top_decode_kernels_s": {k: round(v / 1e6, 4)
                                 for k, v in sorted(decode_kernels.items(), key=lambda kv: -kv[1])[:12]},
        "decode_profile": llm.llm_engine.runner.decode_stats,
        "idle_s_in_gaps_longer_than": gap_hist, "largest_gaps": largest_gaps,
        "allocator_during_run": allocator,
        "synchronizing_calls": dict(sorted(sync_sites.items(), key=lambda kv: -kv[1])[:12]),
        "gc_pauses": {f"gen{g}": {"count": sum(1 for *_, x in gc_pauses if x == g),
                                  "total_ms": round(sum((b - a) for a, b, x in gc_pauses if x == g) / 1e6, 2),
                                  "max_ms": round(max([(b - a) / 1e6 for a, b, x in gc_pauses if x == g] or [0]), 2)}
                      for g in (0, 1, 2)},
        "first_steps_host": [{"at_ms": round((t - t0_ns) / 1e6, 1), "launch_ms": round(a, 2), "wait_ms": round(w, 2)}
                             for t, a, w in launches[:24]],
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
