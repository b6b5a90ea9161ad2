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
    for i, (prompt, p) in enumerate(zip(prompts, params, strict=True)):
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


def _prompts(rng: random.Random, count: int, vocab: int, max_len: int, shared: bool) -> list[list[int]]:
    """Random prompts; with ``shared``, most start with one of three common prefixes (prefix-cache hits)."""
    prefixes = [[rng.randrange(vocab) for _ in range(rng.randint(4, 13))] for _ in range(3)]
    out = []
    for i in range(count):
        head = rng.choice(prefixes) if shared and i % 4 else []
        out.append(head + [rng.randrange(vocab) for _ in range(rng.randint(1, max_len))])
    return out


@pytest.mark.parametrize("prefix_caching", [False, True])
@pytest.mark.parametrize("admission", ["greedy", "forecast"])
@pytest.mark.parametrize("num_blocks", [24, 200])  # 24: preemption under pressure
def test_fake_runner_async_equals_sync(num_blocks, admission, prefix_caching):
    """The fake runner checks every computed position against its simulated cache: a prefix hit on a block
    hashed before its last token was known would fail there, or change the tokens."""
    rng = random.Random(0)
    prompts = _prompts(rng, 16, 997, 30, shared=prefix_caching)
    params = [SamplingParams(max_tokens=rng.randint(1, 25), ignore_eos=i % 3 == 0) for i in range(16)]
    results, hits = [], []
    for async_scheduling in (False, True):
        config = EngineConfig(cache=CacheConfig(block_size=4, enable_prefix_caching=prefix_caching),
                              scheduler=SchedulerConfig(max_num_seqs=5, max_num_batched_tokens=16,
                                                        admission=admission))
        engine = Engine(config, FakeRunner(num_blocks, 4), async_scheduling=async_scheduling)
        assert engine.async_scheduling is async_scheduling
        results.append(_drive(engine, prompts, params))
        hits.append(engine.kv_cache.prefix_cache_hits)
    assert results[0] == results[1]
    if prefix_caching and num_blocks > 24:
        assert hits[1] > 0  # the async run did reuse cached blocks


def test_async_scheduling_hashes_a_block_once_its_last_token_is_known():
    """A request whose sampled token completes a block: the block is cached a step later, with that token."""
    config = EngineConfig(cache=CacheConfig(block_size=4, enable_prefix_caching=True),
                          scheduler=SchedulerConfig(max_num_seqs=2, max_num_batched_tokens=64))
    engine = Engine(config, FakeRunner(64, 4), async_scheduling=True)
    engine.add_request("a", [1, 2, 3], SamplingParams(max_tokens=6, ignore_eos=True), eos_token_id=7)
    tokens = []
    while engine.has_unfinished_requests():
        for out in engine.step():
            tokens.extend(out.new_token_ids)
    history = [1, 2, 3, *tokens]
    # a second request with the first request's prompt and first sampled token hits that whole block
    engine.add_request("b", history[:4] + [5], SamplingParams(max_tokens=1), eos_token_id=7)
    hits = engine.kv_cache.prefix_cache_hits
    while engine.has_unfinished_requests():
        engine.step()
    assert engine.kv_cache.prefix_cache_hits - hits == 4


#: the platform the model-runner check runs on: cpu in CI, the accelerator's name in a device run
DEVICE = os.environ.get("PLINTH_TEST_DEVICE", "cpu")


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_model_runner_async_equals_sync(tmp_path, prefix_caching):
    from plinth.platform import select_platform

    try:
        select_platform(DEVICE)
    except (ValueError, RuntimeError) as exc:
        pytest.skip(f"platform {DEVICE!r} is not available here: {exc}")
    path = save_tiny_model("llama", tmp_path)
    rng = random.Random(1)
    prompts = [[rng.randrange(3, 256) for _ in range(rng.randint(2, 40))] for _ in range(9)]
    prompts[6] = prompts[2][:20] + prompts[6]  # shared prefixes: prefix-cache hits
    params = [SamplingParams(temperature=0.0 if i % 2 else 0.8, seed=i, max_tokens=rng.randint(1, 20),
                             ignore_eos=True) for i in range(9)]
    params[3] = SamplingParams(temperature=0.7, seed=3, max_tokens=6, repetition_penalty=1.3, ignore_eos=True)
    outputs = []
    for async_scheduling in (False, True):
        llm = LLM(str(path), device=DEVICE, dtype="float32", enable_prefix_caching=prefix_caching, max_num_seqs=4,
                  max_num_batched_tokens=32, skip_tokenizer_init=True)
        engine = llm.llm_engine.engine
        engine.async_scheduling = engine.scheduler.async_scheduling = async_scheduling
        result = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
        outputs.append([o.outputs[0].token_ids for o in result])
    assert outputs[0] == outputs[1]
    assert [len(t) for t in outputs[1]] == [p.max_tokens for p in params]


@pytest.mark.parametrize(("params", "needs_history"), [
    (SamplingParams(max_tokens=8, min_tokens=8, ignore_eos=True), False),  # bans nothing: stays async
    (SamplingParams(max_tokens=8, min_tokens=8), True),  # bans EOS until 8 tokens
    (SamplingParams(max_tokens=8, min_tokens=8, ignore_eos=True, stop_token_ids=[5]), True),
    (SamplingParams(max_tokens=8, repetition_penalty=1.2, ignore_eos=True), True),
])
def test_only_requests_whose_sampling_reads_their_outputs_leave_async_scheduling(params, needs_history):
    from plinth.runner.request_state import needs_output_history

    assert bool(needs_output_history(params)) is needs_history
    config = EngineConfig(cache=CacheConfig(block_size=4), scheduler=SchedulerConfig(max_num_seqs=2))
    engine = Engine(config, FakeRunner(64, 4), async_scheduling=True)
    engine.add_request("a", [1, 2, 3], params, eos_token_id=7)
    assert ("a" in engine._history_ids) is needs_history
    assert len(_drive(engine, [], [])["a"]) == 8  # nothing more to add: drives request "a" to its end
