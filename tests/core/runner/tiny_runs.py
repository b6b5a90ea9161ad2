"""Runs of a tiny random-weight llama on the CPU, shared by the runner tests that swap a graph runner in."""

from __future__ import annotations

from plinth import LLM


def tiny_prompts(count: int) -> list[list[int]]:
    """``count`` prompts of 3, 8, 13, ... token ids."""
    return [[3 + (7 * i + j) % 250 for j in range(3 + 5 * i)] for i in range(count)]


def generate_tiny(path, prompts, params, **engine):
    """``(llm, [(token_ids, logprobs) per prompt])`` from a fresh fp32 engine on the CPU."""
    llm = LLM(str(path), device="cpu", dtype="float32", skip_tokenizer_init=True, max_num_seqs=4,
              enable_prefix_caching=False, **engine)
    outs = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
    return llm, [(o.outputs[0].token_ids, o.outputs[0].logprobs) for o in outs]


def model_runner(llm):
    """The engine's model runner (in-process executor)."""
    executor = llm.llm_engine.engine.executor
    return getattr(executor, "runner", executor)
