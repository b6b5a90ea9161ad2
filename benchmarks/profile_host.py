"""The host side of a throughput run under cProfile: which Python functions take the time.

cProfile slows Python down (roughly 1.5-2x), so read shares, not absolute times.

    python benchmarks/profile_host.py --workload T3 --device cuda [--num-requests N] [--top 40]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="T3")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--num-requests", type=int)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()

    from plinth.bench.runner import BenchOptions, _make_llm, _params
    from plinth.bench.workloads import build_workload

    workload = build_workload(args.workload, args.num_requests)
    llm, _ = _make_llm(workload, BenchOptions(device=args.device))
    prompts = [{"prompt_token_ids": r.prompt_token_ids} for r in workload.requests]
    params = [_params(workload, r.max_tokens) for r in workload.requests]
    llm.generate(prompts[:4], [_params(workload, 16) for _ in range(4)])
    profiler = cProfile.Profile()
    profiler.enable()
    llm.generate(prompts, params)
    profiler.disable()
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue())


if __name__ == "__main__":
    main()
