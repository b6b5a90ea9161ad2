"""Captured decode graphs end with the LM head: after a replay the sampler reads the graph's logits
(no eager LM-head launch), and the tokens equal a runner without graphs."""

from __future__ import annotations

import pytest
import torch

from plinth import SamplingParams
from plinth.platform import BatchDescriptor, EagerGraphRunner
from plinth.runner.model_runner import ModelRunner
from tests.core.runner.tiny_runs import generate_tiny, model_runner, tiny_prompts
from tests.e2e.conftest import save_tiny_model

pytest.importorskip("plinth_cpu", reason="these runs use the cpu platform")


class _ReplayRunner(EagerGraphRunner):
    """A device graph on the CPU: capture keeps the step's outputs; a replay reruns the step on the
    persistent buffers and writes into those same tensors, as a CUDA graph does."""

    mode = "fake_graph"

    def __init__(self) -> None:
        self.graphs: dict[BatchDescriptor, tuple] = {}
        self.replaying = False
        self.replays = 0

    def capture(self, fn, descriptors):
        for d in descriptors:
            self.graphs[d] = (fn, fn(d))

    def pad(self, descriptor):
        fits = [d for d in self.graphs if descriptor.uniform_decode and d.num_reqs >= descriptor.num_reqs]
        return min(fits, key=lambda d: d.num_reqs) if fits else descriptor

    def captured(self):
        return tuple(self.graphs)

    def run(self, fn, descriptor):
        if descriptor not in self.graphs:
            return fn(descriptor)
        step, out = self.graphs[descriptor]
        self.replaying, self.replays = True, self.replays + 1
        try:
            fresh = step(descriptor)
        finally:
            self.replaying = False
        for dst, src in zip(torch.utils._pytree.tree_leaves(out), torch.utils._pytree.tree_leaves(fresh),
                            strict=True):
            dst.copy_(src)
        return out


def test_decode_graphs_carry_the_logits(tmp_path, monkeypatch):
    from plinth.platform import select_platform

    path = save_tiny_model("llama", tmp_path)
    prompts = tiny_prompts(3)
    params = [SamplingParams(temperature=0, max_tokens=6, ignore_eos=True),
              SamplingParams(temperature=0.8, seed=7, max_tokens=5, ignore_eos=True, logprobs=2),
              SamplingParams(temperature=0, max_tokens=7, ignore_eos=True, repetition_penalty=1.3)]
    _, plain = generate_tiny(path, prompts, params, max_num_batched_tokens=64)
    fake = _ReplayRunner()
    monkeypatch.setattr(type(select_platform("cpu")), "graph_runner", lambda self, config: fake)
    monkeypatch.setattr(ModelRunner, "_capture_sizes", lambda self: [4, 2, 1])
    llm, graphed = generate_tiny(path, prompts, params, max_num_batched_tokens=64)
    runner = model_runner(llm)
    compute = runner.model.compute_logits
    eager_lm_head = []

    def counting(hidden):
        if not fake.replaying:
            eager_lm_head.append(hidden.shape[0])
        return compute(hidden)

    monkeypatch.setattr(runner.model, "compute_logits", counting)
    again = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
    assert runner.logits_in_graph and fake.replays > 0
    assert all(isinstance(out, tuple) for _, out in fake.graphs.values())
    assert eager_lm_head and len(eager_lm_head) <= 3  # only the prefill steps (the first has all prompts)
    assert [t for t, _ in graphed] == [t for t, _ in plain]
    assert [o.outputs[0].token_ids for o in again] == [t for t, _ in plain]
    for got, want in zip(graphed[1][1], plain[1][1], strict=True):
        assert {k: v.rank for k, v in got.items()} == {k: v.rank for k, v in want.items()}
