"""The Hugging Face transformers peer: the same workloads, model shapes and dummy weights as plinth's.

T1, T2, T3: continuous batching (``generate_batch``'s manager, ``paged|sdpa``), the same token-id
prompts and per-request output lengths, warm-up excluded. Each stops at ``--time-limit`` seconds and
then reports the requests it finished (an honest lower bound, so a device call stays bounded).
L1: one request, ``generate`` with the dynamic cache (eager): decode tokens/s after the first token.

Several workloads of one model shape share one model load; one JSON file each (``hf_<workload>.json``).

    python benchmarks/bench_hf_peer.py --workload T3 --json $OUT/hf_t3.json
    python benchmarks/bench_hf_peer.py --workload T1,T2,L1 --time-limit 45 --out-dir $OUT
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path

import torch


def build_model(shape: dict, device: str, attn: str = "paged|sdpa"):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(shape["model_type"], **{k: v for k, v in shape.items() if k != "model_type"})
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation=attn)
    return model.eval()


def _engine() -> str:
    import transformers

    return f"transformers {transformers.__version__}"


def run_batch(model, workload, time_limit: float) -> dict:
    """All requests through the continuous-batching manager; stops at ``time_limit``."""
    from transformers import GenerationConfig

    gen = GenerationConfig(do_sample=workload.temperature > 0, temperature=workload.temperature, top_p=1.0,
                           top_k=0, max_new_tokens=max(r.max_tokens for r in workload.requests),
                           eos_token_id=None, pad_token_id=0)
    model.set_attn_implementation("paged|sdpa")
    manager = model.init_continuous_batching(generation_config=gen)
    manager.start()
    add = manager.add_request
    takes_max = "max_new_tokens" in inspect.signature(add).parameters
    by_id = "request_id" in inspect.signature(manager.get_result).parameters
    try:
        warm = workload.requests[0]
        add(warm.prompt_token_ids[:64], request_id="warmup", **({"max_new_tokens": 8} if takes_max else {}))
        manager.get_result(request_id="warmup", timeout=300) if by_id else manager.get_result(timeout=300)
        start = time.perf_counter()
        for i, r in enumerate(workload.requests):
            add(r.prompt_token_ids, request_id=f"r{i}", **({"max_new_tokens": r.max_tokens} if takes_max else {}))
        done, out_tokens, in_tokens = 0, 0, 0
        while done < len(workload.requests) and time.perf_counter() - start < time_limit:
            result = manager.get_result(timeout=1)
            if result is None or not str(getattr(result, "request_id", "")).startswith("r"):
                continue
            done += 1
            out_tokens += len(result.generated_tokens)
            in_tokens += len(workload.requests[int(result.request_id[1:])].prompt_token_ids)
        elapsed = time.perf_counter() - start
    finally:
        manager.stop(block=False)
    return {"engine": f"{_engine()} continuous batching paged|sdpa", "workload": workload.name,
            "num_requests": len(workload.requests), "finished_requests": done,
            "finished": done == len(workload.requests), "output_tokens": out_tokens, "elapsed_s": round(elapsed, 2),
            "time_limit_s": time_limit, "output_tok_s": round(out_tokens / elapsed, 1),
            "total_tok_s": round((in_tokens + out_tokens) / elapsed, 1), "per_request_max_tokens": takes_max}


def run_latency(model, workload, iterations: int = 1) -> dict:
    """One request: ``generate`` with the dynamic cache; decode tokens/s = (n - 1) / (its time - the first token's).

    A short generate warms up first; then, per iteration, a one-token generate (the time to first token) and the
    full one (median of ``iterations``)."""
    model.set_attn_implementation("sdpa")
    request = workload.requests[0]
    ids = torch.tensor([request.prompt_token_ids], device=model.device)
    kw = {"do_sample": False, "eos_token_id": None, "pad_token_id": 0}
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, **kw)
    runs = []
    for _ in range(iterations):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
        torch.cuda.synchronize()
        first = time.perf_counter()
        out = model.generate(ids, max_new_tokens=request.max_tokens, min_new_tokens=request.max_tokens, **kw)
        torch.cuda.synchronize()
        end = time.perf_counter()
        n, e2e, ttft = out.shape[1] - ids.shape[1], end - first, first - start
        runs.append((e2e, ttft, (n - 1) / max(e2e - ttft, 1e-9)))
    runs.sort()
    e2e, ttft, decode = runs[len(runs) // 2]
    return {"engine": f"{_engine()} generate, eager, dynamic cache", "workload": workload.name, "num_requests": 1,
            "finished_requests": 1, "finished": True, "output_tokens": request.max_tokens, "elapsed_s": round(e2e, 3),
            "ttft_s": round(ttft, 4), "decode_tok_s": round(decode, 1), "output_tok_s": round(request.max_tokens / e2e, 1)}


def run(names: list[str], num_requests: int | None, time_limit: float, device: str = "cuda") -> list[dict]:
    """Each workload in ``names``; those of one model shape share one model."""
    from plinth.bench.workloads import MODEL_SHAPES, build_workload

    results, model, model_name = [], None, None
    for name in names:
        workload = build_workload(name, num_requests if name != "L1" else None)
        if workload.model != model_name:
            model = None
            torch.cuda.empty_cache()
            model, model_name = build_model(MODEL_SHAPES[workload.model], device), workload.model
        result = run_latency(model, workload) if name == "L1" else run_batch(model, workload, time_limit)
        result["device_name"] = torch.cuda.get_device_name()
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="T3", help="one workload, or several: T1,T2,L1")
    parser.add_argument("--num-requests", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=280.0, help="seconds per batch workload")
    parser.add_argument("--json", default=None, help="the file for a single workload's result")
    parser.add_argument("--out-dir", default=None, help="write hf_<workload>.json files here")
    args = parser.parse_args()
    names = [n.strip().upper() for n in args.workload.split(",") if n.strip()]
    results = run(names, args.num_requests, args.time_limit)
    if args.json and len(results) == 1:
        Path(args.json).write_text(json.dumps(results[0], indent=2), encoding="utf-8")
    if args.out_dir:
        for result in results:
            Path(args.out_dir, f"hf_{result['workload'].lower()}.json").write_text(json.dumps(result, indent=2),
                                                                                  encoding="utf-8")


if __name__ == "__main__":
    main()
