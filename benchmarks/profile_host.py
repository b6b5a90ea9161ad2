"""The host side of a throughput run under cProfile: which Python functions take the time.

cProfile slows Python down (roughly 1.5-2x), so read shares, not absolute times.

    python benchmarks/profile_host.py --workload T3 --device cuda [--num-requests N] [--top 40]
    python benchmarks/profile_host.py --workload T3 --max-tokens 1 --launches --torch-ops   # prompt steps alone:
        # each step's launch time on the host against its device time, and torch's host-side op table
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="T3")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--num-requests", type=int)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, help="every request's output length (1: prompt steps only)")
    ap.add_argument("--launches", action="store_true",
                    help="first, without cProfile: each step's host launch time against its device time")
    ap.add_argument("--torch-ops", action="store_true", help="also torch.profiler's host-side op table")
    args = ap.parse_args()

    from plinth.bench.runner import BenchOptions, _make_llm, _params
    from plinth.bench.workloads import build_workload

    workload = build_workload(args.workload, args.num_requests)
    llm, _ = _make_llm(workload, BenchOptions(device=args.device))
    prompts = [{"prompt_token_ids": r.prompt_token_ids} for r in workload.requests]
    params = [_params(workload, args.max_tokens or r.max_tokens) for r in workload.requests]
    llm.generate(prompts[:4], [_params(workload, 16) for _ in prompts[:4]])
    if args.launches:
        _launch_times(llm, prompts, params)
    profiler = cProfile.Profile()
    profiler.enable()
    llm.generate(prompts, params)
    profiler.disable()
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue())
    if args.torch_ops:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            llm.generate(prompts, params)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


def _launch_times(llm, prompts, params) -> None:
    """Per step: the host's launch (inputs, the forward's kernel launches or a graph replay, sampling) in ms,
    and the device time of the step's work (CUDA events around the launch), with the step's tokens."""
    import torch

    runner = llm.llm_engine.runner
    execute_async = runner.execute_async
    rows = []

    def timed(scheduler_output):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        t = time.perf_counter()
        handle = execute_async(scheduler_output)
        launch = (time.perf_counter() - t) * 1e3
        end.record()
        rows.append((scheduler_output.total_num_scheduled_tokens, len(scheduler_output.num_scheduled_tokens),
                     launch, start, end))
        return handle

    runner.execute_async = timed
    llm.generate(prompts, params)
    torch.cuda.synchronize()
    runner.execute_async = execute_async
    # the span from the event before the launch to the one after it: the step's device time, or the host's launch
    # time where launching is the slower of the two (the device then waits for kernels inside the step)
    print("tokens  requests  host launch ms  device span ms")
    for tokens, reqs, launch, start, end in rows[:40]:
        print(f"{tokens:6d}  {reqs:8d}  {launch:14.2f}  {start.elapsed_time(end):9.2f}")


if __name__ == "__main__":
    main()
