"""The Hugging Face transformers peer for T3 (or T1): continuous batching, ``paged|sdpa``, dummy init.

Same model shape (random weights), same token-id prompts and per-request output lengths as
plinth's workload; warm-up excluded. Writes one JSON line. Stops at ``--time-limit`` seconds
and then reports how far it got (an honest lower bound), so a device call stays bounded.

    python benchmarks/bench_hf_peer.py --workload T3 --json $OUT/hf_t3.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import time

import torch


def build_model(shape: dict, device: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(shape["model_type"], **{k: v for k, v in shape.items() if k != "model_type"})
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="paged|sdpa")
    return model.eval()


def run(workload_name: str, num_requests: int | None, time_limit: float, device: str = "cuda") -> dict:
    from transformers import GenerationConfig

    from plinth.bench.workloads import MODEL_SHAPES, build_workload

    workload = build_workload(workload_name, num_requests)
    model = build_model(MODEL_SHAPES[workload.model], device)
    gen = GenerationConfig(do_sample=workload.temperature > 0, temperature=workload.temperature, top_p=1.0,
                           top_k=0, max_new_tokens=max(r.max_tokens for r in workload.requests),
                           eos_token_id=None, pad_token_id=0)
    manager = model.init_continuous_batching(generation_config=gen)
    manager.start()
    add = manager.add_request
    takes_max = "max_new_tokens" in inspect.signature(add).parameters
    try:
        warm = workload.requests[0]
        add(warm.prompt_token_ids[:64], request_id="warmup", **({"max_new_tokens": 8} if takes_max else {}))
        manager.get_result(request_id="warmup", timeout=300) if "request_id" in inspect.signature(
            manager.get_result).parameters else manager.get_result(timeout=300)
        start = time.perf_counter()
        for i, r in enumerate(workload.requests):
            add(r.prompt_token_ids, request_id=f"r{i}", **({"max_new_tokens": r.max_tokens} if takes_max else {}))
        done, out_tokens = 0, 0
        while done < len(workload.requests) and time.perf_counter() - start < time_limit:
            result = manager.get_result(timeout=1)
            if result is None or not str(getattr(result, "request_id", "")).startswith("r"):
                continue
            done += 1
            out_tokens += len(result.generated_tokens)
        elapsed = time.perf_counter() - start
    finally:
        manager.stop(block=False)
    finished = done == len(workload.requests)
    in_tokens = sum(len(r.prompt_token_ids) for r in workload.requests[:done]) if not finished else workload.input_tokens
    import transformers

    return {"engine": f"transformers {transformers.__version__} continuous batching paged|sdpa",
            "workload": workload.name, "num_requests": len(workload.requests), "finished_requests": done,
            "finished": finished, "output_tokens": out_tokens, "elapsed_s": round(elapsed, 2),
            "output_tok_s": round(out_tokens / elapsed, 1), "total_tok_s": round((in_tokens + out_tokens) / elapsed, 1),
            "per_request_max_tokens": takes_max, "device_name": torch.cuda.get_device_name()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="T3")
    parser.add_argument("--num-requests", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=280.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = run(args.workload, args.num_requests, args.time_limit)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
