"""SmolLM2-135M-Instruct in bf16 on the cpu platform (the csrc ``gemv_bf16`` linears where the CPU
has native bf16 dot products) greedily equals transformers in bf16, single stream and batched.

bf16 logits of this model sit at magnitudes 8-32, where one bf16 step is 0.0625-0.125: two
correct bf16 implementations (transformers against itself with another GEMM order included) may
swap the top two tokens when they are at most one step apart, so only such divergences are excused.
"""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from plinth import LLM, SamplingParams
from tests.e2e.conftest import smollm2_gguf  # noqa: F401 - the fixture
from tests.e2e.greedy_oracle import hf_greedy

TEXTS = ["Once upon a time", "def fibonacci(n):", "The three primary colors are", "Water boils at",
         "In 1492, Columbus", "The capital of France is"]
TOKENS = 24


def bf16_step(value: float) -> float:
    """The spacing of bf16 numbers at ``value`` (8 significant bits)."""
    return 2.0 ** (math.floor(math.log2(abs(value))) - 7) if value else 0.0


def assert_same_greedy_bf16(ours: list[int], ref: list[int], ref_logits: list[torch.Tensor], what: str) -> None:
    for i, (a, b) in enumerate(zip(ours, ref, strict=False)):  # lengths are checked last
        if a == b:
            continue
        top2 = torch.topk(ref_logits[i], 2).values
        gap = float(top2[0] - top2[1])
        assert gap <= bf16_step(float(top2[0])), f"{what}: diverged at step {i} (ours {a}, reference {b}, gap {gap})"
        return
    assert len(ours) == len(ref), what


@pytest.fixture(scope="module")
def models(smollm2_gguf):  # noqa: F811 - the imported fixture
    llm = LLM(str(smollm2_gguf), device="cpu", dtype="bfloat16", max_model_len=512)
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.bfloat16).eval()
    return llm, hf


def test_bf16_greedy_equals_transformers_single_and_batched(models):
    llm, hf = models
    prompts = [llm.get_tokenizer()(t).input_ids for t in TEXTS]
    params = SamplingParams(temperature=0, max_tokens=TOKENS, ignore_eos=True)
    batched = llm.generate(prompts, params)
    for text, prompt, out in zip(TEXTS, prompts, batched, strict=True):
        ref, logits = hf_greedy(hf, prompt, TOKENS)
        single = llm.generate([prompt], params)[0]
        assert_same_greedy_bf16(single.outputs[0].token_ids, ref, logits, f"{text!r} single stream")
        assert_same_greedy_bf16(out.outputs[0].token_ids, ref, logits, f"{text!r} batched")
