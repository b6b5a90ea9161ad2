"""The engine loop's host cost per request-step, on the cpu platform, with a model too small to matter.

Every phase of the loop but the model and the sampler is the same Python on every platform
(scheduling, applying samples, building a step's inputs, the runner's bookkeeping, LLM output
handling), so this measures it without a GPU: 256 requests of 20-60 prompt tokens and 150-250
greedy output tokens through a one-layer Qwen3-shaped model with random weights. Prints
microseconds per request-step for each phase (best of ``--repeats`` runs).

    python benchmarks/host_phases_cpu.py [--requests 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path

TINY_QWEN3 = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 32,
              "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
              "head_dim": 16, "vocab_size": 64, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
              "rope_theta": 1000000.0, "tie_word_embeddings": True, "torch_dtype": "float32", "hidden_act": "silu"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from plinth import LLM, SamplingParams
    from plinth.bench.runner import freeze_heap

    folder = Path(tempfile.mkdtemp(prefix="plinth-host-")) / "tiny-qwen3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_QWEN3))
    llm = LLM(str(folder), load_format="dummy", dtype="float32", skip_tokenizer_init=True, device="cpu",
              enable_prefix_caching=False, max_num_seqs=256, max_num_batched_tokens=16384)
    rng = random.Random(0)
    prompts = [{"prompt_token_ids": [rng.randint(0, 63) for _ in range(rng.randint(20, 60))]}
               for _ in range(args.requests)]
    params = [SamplingParams(temperature=0.0, max_tokens=rng.randint(150, 250), ignore_eos=True)
              for _ in range(args.requests)]
    llm.generate(prompts[:4], params[:4])
    freeze_heap()
    engine = llm.llm_engine
    scheduler, runner = engine.engine.scheduler, engine.runner
    spent: dict[str, float] = defaultdict(float)

    def timed(obj, name: str, key: str) -> None:
        fn = getattr(obj, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t

        setattr(obj, name, wrapper)

    for obj, name, key in ((scheduler, "schedule", "schedule"), (scheduler, "update", "update"),
                           (runner.buffers, "build", "build_inputs"), (runner, "_run_model", "model"),
                           (runner, "sampler", "sampler"), (runner, "_launch", "launch"),
                           (engine.engine, "step", "engine_step")):
        timed(obj, name, key)
    best = None
    for _ in range(args.repeats):
        spent.clear()
        start = time.perf_counter()
        outputs = llm.generate(prompts, params)
        wall = time.perf_counter() - start
        steps = sum(len(o.outputs[0].token_ids) for o in outputs)
        us = {k: v * 1e6 / steps for k, v in spent.items()}
        row = {
            "schedule": us["schedule"], "update": us["update"], "build_inputs": us["build_inputs"],
            "launch_rest": us["launch"] - us["build_inputs"] - us["model"] - us["sampler"],
            "engine_rest": us["engine_step"] - us["schedule"] - us["update"] - us["launch"],
            "llm_outputs": wall * 1e6 / steps - us["engine_step"],
        }
        row["host_total"] = sum(row.values())
        row["model_and_sampler (not host work)"] = us["model"] + us["sampler"]
        if best is None or row["host_total"] < best["host_total"]:
            best = row
    print(json.dumps({"requests": args.requests, "us_per_request_step": {k: round(v, 2) for k, v in best.items()}},
                     indent=1))


if __name__ == "__main__":
    main()
