"""Running a workload through ``LLM`` and reporting requests/s, tokens/s and the roofline share."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from plinth.bench.workloads import MODEL_SHAPES, Workload, build_workload, model_folder
from plinth.engine.heap import freeze_heap

#: Measured ceilings of the lent H100 (BENCHMARKS.md) and the bounds it derives per workload.
ROOFLINE_OUT_TOK_S = {"T1": 4640.0, "T2": 9500.0, "T3": 25400.0, "L1": 198.0}


@dataclass(frozen=True)
class BenchOptions:
    device: str | None = None  # platform name; None = the best available
    num_requests: int | None = None  # scale T1/T2 down
    enforce_eager: bool = False  # no device graphs
    # None = the platform's defaults, as `vllm bench throughput` takes vLLM's: on the cuda platform's 70+ GiB
    # GPUs 1,024 requests and 16,384 tokens a step (vLLM's offline defaults there), else 256 and 8,192
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float = 0.9
    warmup_requests: int = 4  # a short untimed run first (kernel compilation, allocator warm-up)
    engine_options: dict | None = None  # anything else, vLLM names


def _make_llm(workload: Workload, options: BenchOptions):
    from plinth import LLM

    # prefix caching off unless asked for (the recorded figures ran without it; random prompts share no prefix)
    limits = {"max_num_seqs": options.max_num_seqs, "max_num_batched_tokens": options.max_num_batched_tokens}
    engine = {"enable_prefix_caching": False, **{k: v for k, v in limits.items() if v is not None},
              "gpu_memory_utilization": options.gpu_memory_utilization, "enforce_eager": options.enforce_eager,
              **workload.engine_options, **(options.engine_options or {})}
    start = time.perf_counter()
    llm = LLM(model_folder(workload.model), load_format="dummy", dtype="bfloat16", skip_tokenizer_init=True,
              device=options.device, **engine)
    freeze_heap()  # a benchmark process owns this one engine, like a server's engine process
    return llm, time.perf_counter() - start


def _params(workload: Workload, max_tokens: int):
    from plinth import SamplingParams

    return SamplingParams(temperature=workload.temperature, top_p=workload.top_p, max_tokens=max_tokens,
                          ignore_eos=True)


def _environment(llm) -> dict[str, Any]:
    import torch

    platform = llm.llm_engine.platform
    info = {"platform": platform.name, "device_name": platform.device.device_name(),
            "torch": torch.__version__, **dict(platform.capabilities.info)}
    runner, sched = llm.llm_engine.runner, llm.llm_engine.config.scheduler
    info.update(max_num_seqs=sched.max_num_seqs, max_num_batched_tokens=sched.max_num_batched_tokens,
                num_kv_blocks=runner.num_kv_blocks, block_size=runner.block_size,
                graph_mode=getattr(runner.graph_runner, "mode", "eager"),
                graphs_captured=len(runner.graph_runner.captured()),
                capture_seconds=round(getattr(runner, "capture_seconds", 0.0), 3))
    return info


def run_throughput(name: str, options: BenchOptions) -> dict[str, Any]:
    """Generate the whole workload at once; prefill is inside the timer."""
    workload = build_workload(name, options.num_requests)
    llm, load_s = _make_llm(workload, options)
    warm = workload.requests[: options.warmup_requests]
    if warm:
        llm.generate([{"prompt_token_ids": r.prompt_token_ids} for r in warm],
                     [_params(workload, min(r.max_tokens, 16)) for r in warm])
    prompts = [{"prompt_token_ids": r.prompt_token_ids} for r in workload.requests]
    params = [_params(workload, r.max_tokens) for r in workload.requests]
    llm.llm_engine.runner.decode_stats.update(steps=0, host_s=0.0, wait_s=0.0)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    out_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    in_tokens = workload.input_tokens
    result = _summary(workload, elapsed, in_tokens, out_tokens, load_s, _kv_cache_dtype(options),
                      _quantization(options))
    result["decode_steps"] = _decode_profile(llm)
    result["environment"] = _environment(llm)
    return result


def run_latency(name: str, options: BenchOptions, iterations: int = 3) -> dict[str, Any]:
    """One request at a time (L1): end-to-end latency, time to first token, decode tokens/s."""
    workload = build_workload(name, options.num_requests)
    llm, load_s = _make_llm(workload, options)
    request = workload.requests[0]
    engine = llm.llm_engine
    runs = []
    for i in range(iterations + 1):  # the first run is the warm-up
        rid = f"lat-{i}"
        start = time.perf_counter()
        engine.add_request(rid, request.prompt_token_ids, _params(workload, request.max_tokens))
        first = None
        while engine.has_unfinished_requests():
            outs = engine.step()
            if first is None and any(o.outputs and o.outputs[0].token_ids for o in outs):
                first = time.perf_counter()
        end = time.perf_counter()
        if i:
            runs.append((end - start, first - start, (request.max_tokens - 1) / (end - first)))
    runs.sort()
    e2e, ttft, decode = runs[len(runs) // 2]
    result = _summary(workload, e2e, len(request.prompt_token_ids), request.max_tokens, load_s,
                      _kv_cache_dtype(options), _quantization(options))
    result.update(ttft_s=round(ttft, 4), decode_tok_s=round(decode, 1),
                  tpot_ms=round(1000 / decode, 3), iterations=iterations)
    if result["roofline_out_tok_s"]:
        result["roofline_pct"] = round(100 * decode / ROOFLINE_OUT_TOK_S["L1"], 1)
    result["environment"] = _environment(llm)
    return result


def _decode_profile(llm) -> dict:
    """Uniform-decode steps: runner host time vs time waiting for the device, per step."""
    stats = llm.llm_engine.runner.decode_stats
    steps = max(stats["steps"], 1)
    host, wait = stats["host_s"] / steps, stats["wait_s"] / steps
    return {"count": stats["steps"], "runner_host_ms": round(1000 * host, 3), "device_wait_ms": round(1000 * wait, 3),
            "host_share_pct": round(100 * host / max(host + wait, 1e-9), 1)}


def _kv_cache_dtype(options: BenchOptions) -> str:
    from plinth.config import CacheConfig

    return CacheConfig(kv_cache_dtype=(options.engine_options or {}).get("kv_cache_dtype", "auto")).kv_cache_dtype


def _quantization(options: BenchOptions) -> str | None:
    return (options.engine_options or {}).get("quantization")


def _summary(workload: Workload, elapsed: float, in_tokens: int, out_tokens: int, load_s: float,
             kv_cache_dtype: str = "auto", quantization: str | None = None) -> dict:
    """The figures of a run; the roofline share only for 16-bit weights and KV cache, which BENCHMARKS.md's
    bounds assume."""
    out_rate = out_tokens / elapsed
    sixteen_bit = kv_cache_dtype in ("auto", "bfloat16") and quantization is None
    bound = ROOFLINE_OUT_TOK_S.get(workload.name) if sixteen_bit else None
    return {
        "workload": workload.name, "model": workload.model, "dtype": "bfloat16", "kv_cache_dtype": kv_cache_dtype,
        "quantization": quantization,
        "num_requests": len(workload.requests), "input_tokens": in_tokens, "output_tokens": out_tokens,
        "elapsed_s": round(elapsed, 3), "requests_per_s": round(len(workload.requests) / elapsed, 3),
        "total_tok_s": round((in_tokens + out_tokens) / elapsed, 1), "output_tok_s": round(out_rate, 1),
        "roofline_out_tok_s": bound, "roofline_pct": round(100 * out_rate / bound, 1) if bound else None,
        "load_s": round(load_s, 2), "model_shape": MODEL_SHAPES[workload.model]["architectures"][0],
    }
