"""Sampler micro-benchmark on the GPU: the torch path vs the fused Op.SAMPLE kernel (a script).

    python3 tests/platforms/cuda/bench_sampler.py [--rows 256] [--vocab 151936] [--temperature 0.6]
"""

from __future__ import annotations

import argparse
import json

import torch
from plinth_triton.sampling import sample

from plinth.runner.sampler import Sampler
from plinth.runner.sampling_metadata import SamplingMetadata
from plinth.sampling_params import SamplingParams


def time_ms(fn, iters=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--temperature", type=float, default=0.6)
    args = ap.parse_args()
    rows, vocab = args.rows, args.vocab
    logits = torch.randn(rows, vocab, device="cuda") * 3
    params = [SamplingParams(temperature=args.temperature)] * rows
    metadata = SamplingMetadata.build(params, [[1]] * rows, [[]] * rows, vocab_size=vocab, device="cuda")
    greedy = SamplingMetadata.build([SamplingParams(temperature=0.0)] * rows, [[1]] * rows, [[]] * rows,
                                    vocab_size=vocab, device="cuda")
    torch_sampler, fused = Sampler(), Sampler(sample_op=sample)
    result = {
        "rows": rows, "vocab": vocab, "temperature": args.temperature,
        "torch_ms": time_ms(lambda: torch_sampler(logits, metadata)),
        "fused_ms": time_ms(lambda: fused(logits, metadata)),
        "torch_greedy_ms": time_ms(lambda: torch_sampler(logits, greedy)),
        "fused_greedy_ms": time_ms(lambda: fused(logits, greedy)),
        "device": torch.cuda.get_device_name(),
    }
    bytes_read = rows * vocab * 4
    result["fused_GBps"] = bytes_read / result["fused_ms"] / 1e6
    result["speedup"] = result["torch_ms"] / result["fused_ms"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
