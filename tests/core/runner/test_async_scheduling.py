"""Async scheduling (schedule N+1 before applying N) gives exactly the tokens of plain steps."""

from __future__ import annotations

import os
import random

import pytest

from plinth import LLM, SamplingParams
from plinth.config import CacheConfig, EngineConfig, SchedulerConfig
from plinth.engine import Engine
from plinth.testing.fake_runner import FakeRunner
from tests.e2e.conftest import save_tiny_model


def _drive(engine: Engine, prompts, params) -> dict[str, list[int]]:
    for i, (prompt, p) in enumerate(zip(prompts, params)):
        engine.add_request(str(i), prompt, p, eos_token_id=7)
    tokens: dict[str, list[int]] = {}
    finished = set()
    for _ in range(20_000):
        if not engine.has_unfinished_requests():
            break
        for out in engine.step():
            assert out.request_id not in finished
            tokens.setdefault(out.request_id, []).extend(out.new_token_ids)
            if out.finish_reason is not None:
                finished.add(out.request_id)
    assert not engine.has_unfinished_requests()
    return tokens


@pytest.mark.parametrize("admission", ["greedy", "forecast"])
@pytest.mark.parametrize("num_blocks", [24, 200])  # 24: preemption under pressure
def test_fake_runner_async_equals_sync(num_blocks, admission):
    rng = random.Random(0)
    prompts = [[rng.randrange(997) for _ in range(rng.randint(1, 30))] for _ in range(12)]
    params = [SamplingParams(max_tokens=rng.randint(1, 25), ignore_eos=i % 3 == 0) for i in range(12)]
    results = []
    for async_scheduling in (False, True):
        config = EngineConfig(cache=CacheConfig(block_size=4, enable_prefix_caching=False),
                              scheduler=SchedulerConfig(max_num_seqs=5, max_num_batched_tokens=16,
                                                        admission=admission))
        engine = Engine(config, FakeRunner(num_blocks, 4), async_scheduling=async_scheduling)
        assert engine.async_scheduling is async_scheduling
        results.append(_drive(engine, prompts, params))
    assert results[0] == results[1]


#: the platform the model-runner check runs on: cpu in CI, the accelerator's name in a device run
DEVICE = os.environ.get("PLINTH_TEST_DEVICE", "cpu")


def test_model_runner_async_equals_sync(tmp_path):
    from plinth.platform import select_platform

    try:
        select_platform(DEVICE)
    except (ValueError, RuntimeError) as exc:
        pytest.skip(f"platform {DEVICE!r} is not available here: {exc}")
    path = save_tiny_model("llama", tmp_path)
    rng = random.Random(1)
    prompts = [[rng.randrange(3, 256) for _ in range(rng.randint(2, 40))] for _ in range(9)]
    params = [SamplingParams(temperature=0.0 if i % 2 else 0.8, seed=i, max_tokens=rng.randint(1, 20),
                             ignore_eos=True) for i in range(9)]
    params[3] = SamplingParams(temperature=0.7, seed=3, max_tokens=6, repetition_penalty=1.3, ignore_eos=True)
    outputs = []
    for async_scheduling in (False, True):
        llm = LLM(str(path), device=DEVICE, dtype="float32", enable_prefix_caching=False, max_num_seqs=4,
                  max_num_batched_tokens=32, skip_tokenizer_init=True)
        engine = llm.llm_engine.engine
        engine.async_scheduling = engine.scheduler.async_scheduling = async_scheduling
        result = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
        outputs.append([o.outputs[0].token_ids for o in result])
    assert outputs[0] == outputs[1]
    assert [len(t) for t in outputs[1]] == [p.max_tokens for p in params]
