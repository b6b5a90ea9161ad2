"""Serving throughput at saturation vs the offline engine, same workload, side by side (scaled S1).

Both runs use the same token-id prompts (``plinth_serve.bench.serve_bench.make_prompts``), greedy,
``ignore_eos`` and a fixed output length. Offline: ``LLM.generate`` on all prompts at once.
Serving: `plinth serve` in a subprocess, then `plinth bench serve`'s generator with every request
sent at once (streaming). Model load and one warm-up request are outside both timers.

    python benchmarks/bench_serve_vs_offline.py --num-prompts 32 --input-len 128 --output-len 32
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import httpx

from plinth_serve.bench.serve_bench import BenchConfig, make_prompts, run_bench


def offline(config: BenchConfig, max_model_len: int) -> dict:
    from plinth import LLM, SamplingParams

    llm = LLM(device="cpu", max_model_len=max_model_len)
    params = SamplingParams(max_tokens=config.output_len, min_tokens=config.output_len, ignore_eos=True,
                            temperature=0.0)
    llm.generate([[1, 2, 3, 4]], SamplingParams(max_tokens=2))  # warm-up
    prompts = make_prompts(config)
    start = time.perf_counter()
    outs = llm.generate(prompts, params)
    duration = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"duration_s": duration, "total_output_tokens": tokens, "output_throughput": tokens / duration,
            "request_throughput": len(outs) / duration}


def serving(config: BenchConfig, max_model_len: int, port: int) -> dict:
    cmd = [sys.executable, "-m", "plinth_serve", "serve", "--device", "cpu", "--port", str(port),
           "--max-model-len", str(max_model_len), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        httpx.post(url + "/v1/completions", json={"prompt": [1, 2, 3, 4], "max_tokens": 2}, timeout=120)  # warm-up
        return run_bench(BenchConfig(**{**config.__dict__, "base_url": url}))
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    config = BenchConfig(num_prompts=args.num_prompts, input_len=args.input_len, output_len=args.output_len)
    off = offline(config, args.max_model_len)
    srv = serving(config, args.max_model_len, args.port)
    result = {"machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
              "workload": {"num_prompts": args.num_prompts, "input_len": args.input_len,
                           "output_len": args.output_len},
              "offline": off, "serving": {k: srv[k] for k in ("duration_s", "completed", "failed",
                                                               "output_throughput", "request_throughput",
                                                               "ttft", "tpot", "itl", "e2e")},
              "serving_vs_offline": srv["output_throughput"] / off["output_throughput"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
