"""End to end through LLM (scheduler, runner, cpu platform) against HF transformers, fp32.

Greedy tokens must equal HF's for 32 steps in mixed batches, with chunked prefill forced,
with prefix-cache hits and under forced preemption; logprobs equal HF's log-softmax.
"""

from __future__ import annotations

import random

import pytest
import torch
import transformers

from plinth import LLM, SamplingParams
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy

STEPS = 32


def _prompts(n: int, seed: int = 0, prefix: list[int] | None = None) -> list[list[int]]:
    rng = random.Random(seed)
    return [(prefix or []) + [rng.randrange(3, 256) for _ in range(rng.randrange(3, 40))] for _ in range(n)]


def _check(llm: LLM, model_path, prompts, **params):
    hf = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    sp = SamplingParams(temperature=0, max_tokens=STEPS, ignore_eos=True, **params)
    outs = llm.generate(prompts, sp)
    for prompt, out in zip(prompts, outs, strict=True):
        ref, ref_logits = hf_greedy(hf, prompt, STEPS)
        assert_same_greedy(out.outputs[0].token_ids, ref, ref_logits)
    return outs, hf


def _llm(path, **kw):
    kw.setdefault("max_model_len", 256)
    return LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, **kw)


def test_mixed_batch_matches_hf(tiny_model):
    _check(_llm(tiny_model), tiny_model, _prompts(6))


def test_chunked_prefill_forced(tiny_llama):
    _check(_llm(tiny_llama, max_num_batched_tokens=16, max_num_seqs=4), tiny_llama, _prompts(5, seed=1))


def test_prefix_cache_hits(tiny_llama):
    llm = _llm(tiny_llama)
    shared = list(range(10, 58))  # three full blocks of 16
    prompts = _prompts(4, seed=2, prefix=shared)
    _check(llm, tiny_llama, prompts[:1])
    outs, _ = _check(llm, tiny_llama, prompts[1:])
    assert all(o.num_cached_tokens >= 48 for o in outs)


def test_forced_preemption(tiny_llama):
    # 12 blocks of 16 tokens cannot hold 6 requests of up to ~70 tokens at once.
    llm = _llm(tiny_llama, num_gpu_blocks_override=12, max_model_len=96, admission="greedy")
    _check(llm, tiny_llama, _prompts(6, seed=3))
    assert llm.llm_engine.engine.stats().num_preemptions > 0


def test_logprobs_equal_hf_log_softmax(tiny_llama):
    llm = _llm(tiny_llama)
    prompts = _prompts(2, seed=4)
    outs, hf = _check(llm, tiny_llama, prompts, logprobs=3)
    for prompt, out in zip(prompts, outs, strict=True):
        _, ref_logits = hf_greedy(hf, prompt, STEPS)
        for step, entry in enumerate(out.outputs[0].logprobs[:8]):
            ref = torch.log_softmax(ref_logits[step], -1)
            for token_id, lp in entry.items():
                assert lp.logprob == pytest.approx(float(ref[token_id]), abs=1e-4)
            top = torch.topk(ref, 3).indices.tolist()
            assert set(top) <= set(entry)


def test_prompt_logprobs_equal_hf_across_chunks(tiny_llama):
    # A 16-token budget splits the prompts into several prefill chunks.
    llm = _llm(tiny_llama, max_num_batched_tokens=16, max_num_seqs=2)
    prompts = _prompts(3, seed=5, prefix=list(range(3, 20)))
    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    llm.generate(prompts[:1], SamplingParams(temperature=0, max_tokens=2))  # warms the prefix cache
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=2, prompt_logprobs=2))
    for prompt, out in zip(prompts, outs, strict=True):
        with torch.inference_mode():
            ref = torch.log_softmax(hf(torch.tensor([prompt])).logits[0].float(), -1)
        assert out.prompt_logprobs[0] is None and len(out.prompt_logprobs) == len(prompt)
        for pos in range(1, len(prompt)):
            entry = out.prompt_logprobs[pos]
            assert entry[prompt[pos]].logprob == pytest.approx(float(ref[pos - 1, prompt[pos]]), abs=1e-4)
            assert set(torch.topk(ref[pos - 1], 2).indices.tolist()) <= set(entry)


def test_without_tokenizer_stop_strings_are_refused_clearly(tiny_llama):
    llm = _llm(tiny_llama)
    with pytest.raises(ValueError, match="stop strings need a tokenizer"):
        llm.generate([[5, 6, 7]], SamplingParams(max_tokens=2, stop=["x"]))
    out = llm.generate([[5, 6, 7]], SamplingParams(temperature=0, max_tokens=3, ignore_eos=True))[0].outputs[0]
    assert len(out.token_ids) == 3 and out.text == ""


def test_a_bad_prompt_in_a_batch_leaves_nothing_behind(tiny_llama):
    llm = _llm(tiny_llama, max_model_len=64)
    with pytest.raises(ValueError, match="max_model_len"):
        llm.generate([[5, 6, 7], list(range(3, 100))], SamplingParams(max_tokens=2))
    assert not llm.llm_engine.has_unfinished_requests()
    assert not llm.llm_engine.engine.has_unfinished_requests()
    assert len(llm.generate([[5, 6, 7]], SamplingParams(max_tokens=2))) == 1
