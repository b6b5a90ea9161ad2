"""Where the device memory goes before the KV cache: weights, the profile run's peak, what the allocator keeps.

    python benchmarks/memory_budget.py --workload T2 [--max-num-batched-tokens 16384]

Builds the engine of a BENCHMARKS.md workload (dummy weights, CUDA) and prints, at each start-up phase, torch's
allocated / reserved / peak bytes and the device's used bytes, then the KV blocks the budget gave. A diagnostic
script: it reads torch.cuda directly, which core never does.
"""

from __future__ import annotations

import argparse

import torch

import plinth.runner.model_runner as model_runner
from plinth.bench.runner import BenchOptions, _make_llm
from plinth.bench.workloads import build_workload

GiB = 2**30


def _report(phase: str) -> None:
    free, total = torch.cuda.mem_get_info()
    print(f"{phase:<28} allocated {torch.cuda.memory_allocated() / GiB:6.2f}  reserved "
          f"{torch.cuda.memory_reserved() / GiB:6.2f}  peak {torch.cuda.max_memory_allocated() / GiB:6.2f}  "
          f"device used {(total - free) / GiB:6.2f} of {total / GiB:.2f} GiB", flush=True)


def _wrap(name: str, before: str, after: str, reset_peak: bool = False) -> None:
    inner = getattr(model_runner, name)

    def wrapped(*args, **kwargs):
        _report(before)
        if reset_peak:
            torch.cuda.reset_peak_memory_stats()
        result = inner(*args, **kwargs)
        _report(after)
        return result

    setattr(model_runner, name, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="T2")
    parser.add_argument("--max-num-batched-tokens", type=int, default=BenchOptions.max_num_batched_tokens)
    args = parser.parse_args()
    _wrap("get_model", "start", "weights loaded")
    _wrap("profile_run", "before the profile run", "after the profile run", reset_peak=True)
    _wrap("allocate_kv_caches", "before the KV cache", "KV cache allocated")
    llm, _ = _make_llm(build_workload(args.workload, 8),
                       BenchOptions(device="cuda", max_num_batched_tokens=args.max_num_batched_tokens))
    _report("graphs captured")
    runner = llm.llm_engine.runner
    print(f"KV blocks: {runner.num_kv_blocks} of {runner.block_size} tokens")


if __name__ == "__main__":
    main()
