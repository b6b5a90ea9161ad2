"""Serving (workload S1) at several arrival rates, and at saturation against the offline engine, in one run.

Both sides use the same token-id prompts (``plinth_serve.bench.serve_bench.make_prompts``), greedy,
``ignore_eos`` and a fixed output length, and the same engine settings. Serving: `plinth serve` in a
subprocess, one warm-up request, then `plinth bench serve`'s generator once per rate (Poisson arrivals,
``inf`` = all at once; each rate draws its own prompts, so no run hits the prefix cache of another).
Offline: ``LLM.generate`` on the ``inf`` run's prompts, after the server has exited. Model load and
warm-up are outside both timers.

    # scaled S1 on the CPU, SmolLM2 (the default model)
    python benchmarks/bench_serve_vs_offline.py --num-prompts 32 --input-len 128 --output-len 32
    # S1 on a GPU: Llama-3.1-8B shape, dummy weights, no tokenizer (token ids in and out)
    python benchmarks/bench_serve_vs_offline.py --device cuda --model-shape llama-3.1-8b --rates 4 8 16 inf
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import time

import httpx

from plinth_serve.bench.serve_bench import BenchConfig, make_prompts, run_bench

SUMMARY_KEYS = ("duration_s", "completed", "failed", "errors", "output_throughput", "request_throughput",
                "total_token_throughput", "ttft", "tpot", "itl", "e2e", "client_cpu_s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), 0.0 where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def engine_pid(log_path: str) -> int | None:
    with open(log_path, errors="replace") as f:
        match = re.search(r"engine pid (\d+)", f.read())
    return int(match.group(1)) if match else None


def engine_options(args) -> dict:
    """The engine settings both sides share, as LLM keyword arguments."""
    opts = {"device": args.device, "max_model_len": args.max_model_len, "max_num_seqs": args.max_num_seqs,
            "max_num_batched_tokens": args.max_num_batched_tokens}
    if args.model_shape:
        from plinth.bench.workloads import model_folder

        opts.update(model=model_folder(args.model_shape), load_format="dummy", skip_tokenizer_init=True)
    return opts


def serve_command(opts: dict, port: int, log_level: str = "warning") -> list[str]:
    model = [opts["model"]] if "model" in opts else []  # the positional MODEL; none = the default model
    cmd = [sys.executable, "-m", "plinth_serve", "serve", *model, "--port", str(port), "--log-level", log_level]
    for key, value in opts.items():
        if key == "model":
            continue
        if value is True:
            cmd.append("--" + key.replace("_", "-"))
        else:
            cmd += ["--" + key.replace("_", "-"), str(value)]
    return cmd


def offline(config: BenchConfig, opts: dict) -> dict:
    from plinth import LLM, SamplingParams

    llm = LLM(**opts)
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


def serving(configs: list[BenchConfig], opts: dict, port: int, log_path: str, log_level: str) -> list[dict]:
    with open(log_path, "w") as log:
        proc = subprocess.Popen(serve_command(opts, port, log_level), stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        started, deadline = time.monotonic(), time.monotonic() + 600
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {log_path}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        print(f"server ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        httpx.post(url + "/v1/completions", json={"prompt": [1, 2, 3, 4], "max_tokens": 2}, timeout=300)  # warm-up
        results = []
        pids = {"http_process_cpu_s": proc.pid, "engine_process_cpu_s": engine_pid(log_path)}
        for config in configs:
            before = {k: cpu_seconds(pid) for k, pid in pids.items() if pid}
            out = run_bench(dataclasses.replace(config, base_url=url))
            summary = {k: out[k] for k in SUMMARY_KEYS}
            summary.update({k: cpu_seconds(pids[k]) - v for k, v in before.items()})
            print(json.dumps({"rate": str(config.request_rate), **summary}), file=sys.stderr, flush=True)
            results.append(summary)
        return results
    finally:
        proc.terminate()
        proc.wait(120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--rates", nargs="+", type=float, default=[float("inf")],
                        help="Poisson arrival rates (req/s); inf = all at once. The inf run is compared to offline.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-shape", default=None, help="A built-in model shape (plinth.bench.workloads), "
                        "served with dummy weights and no tokenizer. Default: the default model (SmolLM2).")
    parser.add_argument("--max-model-len", type=int, default=512)
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--max-num-batched-tokens", type=int, default=8192, help="`plinth serve`'s default.")
    parser.add_argument("--client-workers", type=int, default=1, help="Load-generator processes.")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--server-log", default="serve_bench_server.log")
    parser.add_argument("--server-log-level", default="warning", help="info adds the engine-core loop's timing.")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args()
    opts = engine_options(args)
    vocab = 10000
    configs = [BenchConfig(num_prompts=args.num_prompts, input_len=args.input_len, output_len=args.output_len,
                           request_rate=rate, seed=i, vocab_size=vocab, num_workers=args.client_workers)
               for i, rate in enumerate(args.rates)]
    srv = serving(configs, opts, args.port, args.server_log, args.server_log_level)
    result = {"machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
              "workload": {"num_prompts": args.num_prompts, "input_len": args.input_len,
                           "output_len": args.output_len},
              "engine": {k: v for k, v in opts.items() if k != "model"} | {"model": args.model_shape or "default"},
              "serving": [{"rate": str(c.request_rate), **s} for c, s in zip(configs, srv, strict=True)]}
    at_once = [(c, s) for c, s in zip(configs, srv, strict=True) if c.request_rate == float("inf")]
    if at_once:
        off = offline(at_once[0][0], opts)
        result["offline"] = off
        result["serving_vs_offline"] = at_once[0][1]["output_throughput"] / off["output_throughput"]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
