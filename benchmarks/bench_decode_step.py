"""Where a T3 decode step's time goes: device time of the captured model step at batch 256 for
several context lengths (CUDA events over graph replays), of the LM head and of the sampler,
against the bandwidth floor. Prints one JSON object.

    python benchmarks/bench_decode_step.py --json $OUT/decode_step.json
"""

from __future__ import annotations

import argparse
import json

import torch

from plinth import LLM, SamplingParams
from plinth.bench.workloads import model_folder
from plinth.platform import BatchDescriptor
from plinth.runner.sampling_metadata import SamplingMetadata

BANDWIDTH = 3.0e12  # measured device-copy ceiling of the lent H100 (BENCHMARKS.md)
WEIGHT_BYTES, KV_BYTES_PER_TOKEN = 1.19e9, 114688  # Qwen3-0.6B


def _time(fn, iters=20) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    llm = LLM(model_folder("qwen3-0.6b"), load_format="dummy", dtype="bfloat16", skip_tokenizer_init=True,
              device="cuda", max_model_len=4096, enable_prefix_caching=False)
    runner = llm.llm_engine.runner
    b, buf, bs = args.batch, runner.buffers, runner.block_size
    results = {"batch": b}
    for ctx in (128, 512, 1024, 2048):
        nb = -(-ctx // bs)
        buf.query_start_loc.device[: b + 1] = torch.arange(b + 1, dtype=torch.int32)
        buf.seq_lens.device[:b] = ctx
        buf.block_table.device[:b, :nb] = (torch.arange(b * nb, dtype=torch.int32) % runner.num_kv_blocks).view(b, nb)
        buf.slot_mapping.device[:b] = buf.block_table.device[:b, nb - 1].long() * bs + (ctx - 1) % bs
        buf.input_ids.device[:b] = torch.randint(0, 10000, (b,))
        buf.positions.device[:b] = ctx - 1
        d = BatchDescriptor(b, b, True)
        ms = _time(lambda d=d: runner.graph_runner.run(runner._decode_step, d))
        floor = (WEIGHT_BYTES + b * ctx * KV_BYTES_PER_TOKEN) / BANDWIDTH * 1e3
        results[f"model_step_ms_ctx{ctx}"] = round(ms, 3)
        results[f"floor_ms_ctx{ctx}"] = round(floor, 3)
    hidden = runner.graph_runner.run(runner._decode_step, BatchDescriptor(b, b, True))
    results["lm_head_ms"] = round(_time(lambda: runner.model.compute_logits(hidden[:b])), 3)
    params = [SamplingParams(temperature=0.6, max_tokens=100, ignore_eos=True)] * b
    logits = runner.model.compute_logits(hidden[:b])

    def sample():
        md = SamplingMetadata.build(params, [[1]] * b, [[]] * b, vocab_size=logits.shape[1], device="cuda")
        return runner.sampler(logits, md).sampled_token_ids

    results["sampler_ms"] = round(_time(sample), 3)
    print(json.dumps(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
