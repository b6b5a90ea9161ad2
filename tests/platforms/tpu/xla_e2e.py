"""End to end on XLA:CPU through ``LLM(..., device="tpu")``: greedy tokens equal transformers'.

Run by ``test_xla_cpu.py`` with the torch-xla venv's python (``PJRT_DEVICE=CPU``); exits
non-zero on a mismatch and prints the XLA compile count of start-up and of generation.

Until the model runner enters ``platform.inference_mode()`` (contract 1.1) instead of
``torch.inference_mode()``, this script makes ``torch.inference_mode`` mean ``no_grad``
before plinth is imported: torch-xla 2.9 cannot slice persistent buffers in inference mode.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import torch

if "platform.inference_mode()" not in Path(
        __import__("importlib.util").util.find_spec("plinth.runner.model_runner").origin).read_text():
    torch.inference_mode = lambda mode=True: torch.no_grad()  # noqa: E731  (see the module docstring)

import transformers  # noqa: E402

from plinth import LLM, SamplingParams  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy  # noqa: E402

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=512, initializer_range=0.2,
            bos_token_id=1, eos_token_id=2)
STEPS = 16


def check_cpu_caps() -> None:
    """On XLA:CPU the platform caps what every step is padded to (start-up compiles each bucket)."""
    from plinth_tpu.platform import TpuPlatform

    from plinth.config import EngineConfig

    patch = TpuPlatform().configure(EngineConfig())  # defaults: 256 requests, 8192 tokens
    caps = (patch.max_num_seqs, patch.max_num_batched_tokens, patch.capture_sizes)
    if caps != (16, 128, (8, 16)):
        raise SystemExit(f"XLA:CPU caps (requests, tokens, capture sizes) are {caps}, expected (16, 128, (8, 16))")


def main() -> int:
    from plinth_tpu.graph_runner import compile_count

    check_cpu_caps()
    root = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).eval()
    hf.save_pretrained(root / "llama")
    rng = random.Random(0)
    prompts = [[rng.randrange(3, 256) for _ in range(rng.randrange(3, 40))] for _ in range(5)]
    start = time.perf_counter()
    llm = LLM(str(root / "llama"), device="tpu", dtype="float32", skip_tokenizer_init=True,
              max_model_len=128, max_num_seqs=8, max_num_batched_tokens=64)
    startup, compiles = time.perf_counter() - start, compile_count()
    print(f"start-up {startup:.1f} s, {compiles} XLA compilations (bucket precompile included)")
    start = time.perf_counter()
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=STEPS, ignore_eos=True))
    print(f"generate {time.perf_counter() - start:.1f} s, {compile_count() - compiles} more XLA compilations")
    for prompt, out in zip(prompts, outs, strict=True):
        ref, ref_logits = hf_greedy(hf, prompt, STEPS)
        assert_same_greedy(out.outputs[0].token_ids, ref, ref_logits)
    print(f"greedy equal to transformers for {len(prompts)} prompts x {STEPS} tokens")
    check_no_recompiles(llm, compiles, rng)
    return 0


def check_no_recompiles(llm: LLM, after_startup: int, rng: random.Random) -> None:
    """Inside the buckets nothing compiles after start-up: other prompt lengths, batch sizes, every
    token bucket (8 to 64), chunked prefill; a new sampling kind compiles once, not per bucket."""
    from plinth_tpu.graph_runner import compile_count

    greedy = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    for count, longest in ((1, 6), (8, 30), (3, 120)):
        prompts = [[rng.randrange(3, 256) for _ in range(rng.randrange(1, longest))] for _ in range(count)]
        llm.generate(prompts, greedy)
    new = compile_count() - after_startup
    print(f"greedy workloads inside the buckets: {new} XLA compilations after start-up")
    if new:
        raise SystemExit(f"{new} XLA compilations after start-up for greedy steps inside the buckets; expected 0")
    sampled = SamplingParams(temperature=0.8, top_k=20, max_tokens=4, ignore_eos=True)
    llm.generate([[rng.randrange(3, 256) for _ in range(n)] for n in (5, 50)], sampled)
    first = compile_count()
    llm.generate([[rng.randrange(3, 256) for _ in range(n)] for n in (2, 9, 17, 33, 60)], sampled)
    print(f"top-k sampling: {first - after_startup - new} compilations at first use, {compile_count() - first} after")
    if compile_count() != first:
        raise SystemExit(f"top-k sampling compiled again ({compile_count() - first}) for other batch shapes")


if __name__ == "__main__":
    sys.exit(main())
