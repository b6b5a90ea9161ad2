"""Async scheduling with prefix caching under stress: random arrivals with shared prefixes, n > 1, aborts and stop
rules while a step is in flight, preemption, both policies. After every step every cached block holds exactly the KV
its hash claims (the fake runner records what each slot was written with); at the end nothing is leaked. The strict
fake runner also fails if the runner is told to drop a request it does not hold."""

from __future__ import annotations

import random

import pytest

from plinth import SamplingParams
from plinth.config import CacheConfig, EngineConfig, SchedulerConfig
from plinth.engine import Engine
from plinth.testing.fake_runner import FakeRunner

BLOCK = 4


def _check_cached_blocks(engine: Engine, runner: FakeRunner) -> None:
    for block in engine.kv_cache.pool.blocks:
        if block.block_hash is None:
            continue
        written = [runner.kv[block.block_id][slot] for slot in range(BLOCK)]
        assert [w and w[0] for w in written] == block.token_ids, f"block {block.block_id} cached with other KV"


@pytest.mark.parametrize("async_scheduling", [False, True])
@pytest.mark.parametrize("seed", range(80))
@pytest.mark.parametrize("num_blocks", [20, 60])  # 20: constant preemption
def test_cached_blocks_always_hold_their_tokens(num_blocks, seed, async_scheduling):
    rng = random.Random(seed)
    config = EngineConfig(
        cache=CacheConfig(block_size=BLOCK, enable_prefix_caching=True),
        scheduler=SchedulerConfig(max_num_seqs=rng.randint(2, 6), max_num_batched_tokens=rng.choice([8, 16, 64]),
                                  admission=rng.choice(["greedy", "forecast"]), policy=rng.choice(["fcfs", "priority"])))
    runner = FakeRunner(num_blocks, BLOCK)
    engine = Engine(config, runner, async_scheduling=async_scheduling)
    prefixes = [[rng.randrange(997) for _ in range(rng.randint(3, 14))] for _ in range(3)]
    live: set[str] = set()
    added = 0
    for _ in range(3000):
        if added < 40 and rng.random() < 0.3:
            prompt = (rng.choice(prefixes) if rng.random() < 0.7 else []) + [rng.randrange(997)
                                                                              for _ in range(rng.randint(1, 20))]
            params = SamplingParams(n=rng.choice([1, 1, 2, 3]), max_tokens=rng.randint(2, 20),
                                    ignore_eos=rng.random() < 0.5, min_tokens=rng.choice([0, 0, 2]))
            live.update(engine.add_request(str(added), prompt, params, eos_token_id=7, priority=rng.randint(0, 3)))
            added += 1
        if live and rng.random() < 0.1:
            victim = rng.choice(sorted(live))
            engine.abort_request([victim])
            live.discard(victim)
        if live and rng.random() < 0.05:
            victim = rng.choice(sorted(live))
            engine.finish_requests([victim], "stop")
            live.discard(victim)
        if added >= 40 and not engine.has_unfinished_requests():
            break
        for out in engine.step():
            if out.finish_reason is not None:
                live.discard(out.request_id)
        _check_cached_blocks(engine, runner)
    while engine.has_unfinished_requests():
        engine.step()
        _check_cached_blocks(engine, runner)
    kv = engine.kv_cache
    assert kv.num_free_blocks == num_blocks and not kv.block_tables
    assert not engine.scheduler._pending
