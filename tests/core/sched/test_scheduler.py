"""Scheduler: token budget, chunked prefill, admission, preemption, priority, abort."""

from __future__ import annotations

import pytest

from plinth.config import SchedulerConfig
from plinth.sampling_params import SamplingParams
from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.request import Request, RequestStatus
from plinth.sched.scheduler import Scheduler
from plinth.testing.fake_runner import FakeRunner


def make(num_blocks=32, block_size=4, max_model_len=None, caching=True, **config):
    kv = KVCacheManager(num_blocks, block_size, caching)
    scheduler = Scheduler(SchedulerConfig(**config), kv, max_model_len or num_blocks * block_size)
    return scheduler, FakeRunner(num_blocks, block_size)


def add(scheduler, rid, prompt_len, max_tokens=8, arrival=None, priority=0, first_token=0):
    tokens = list(range(first_token, first_token + prompt_len))
    request = Request(rid, tokens, SamplingParams(max_tokens=max_tokens), arrival_time=arrival,
                      priority=priority)
    scheduler.add_request(request)
    return request


def step(scheduler, runner):
    out = scheduler.schedule()
    return out, scheduler.update(out, runner.execute(out))


def test_long_prompt_is_chunked_and_samples_only_at_its_end():
    scheduler, runner = make(max_num_batched_tokens=4)
    add(scheduler, "a", 10)
    plans = []
    for _ in range(3):
        out, outputs = step(scheduler, runner)
        plans.append((out.num_scheduled_tokens["a"], [o.new_token_ids for o in outputs]))
    assert [p[0] for p in plans] == [4, 4, 2]
    assert plans[0][1] == [] and plans[1][1] == [] and len(plans[2][1][0]) == 1
    out, _ = step(scheduler, runner)
    assert out.scheduled_cached_reqs[0].num_computed_tokens == 11 - 1 and out.total_num_scheduled_tokens == 1


def test_running_first_then_waiting_within_budget_and_seats():
    scheduler, runner = make(max_num_batched_tokens=6, max_num_seqs=2)
    add(scheduler, "a", 3, arrival=0)
    step(scheduler, runner)
    add(scheduler, "b", 8, arrival=1)
    add(scheduler, "c", 2, arrival=2)
    out, _ = step(scheduler, runner)
    assert out.num_scheduled_tokens == {"a": 1, "b": 5}  # decode first, then b's first chunk
    assert [r.req_id for r in out.scheduled_new_reqs] == ["b"]
    out, _ = step(scheduler, runner)
    assert out.num_scheduled_tokens == {"a": 1, "b": 3}  # c waits: max_num_seqs = 2
    assert len(scheduler.running) == 2 and len(scheduler.waiting) == 1


def test_without_chunked_prefill_a_prompt_waits_for_a_whole_budget():
    scheduler, runner = make(max_num_batched_tokens=8, enable_chunked_prefill=False)
    add(scheduler, "a", 5, arrival=0)
    add(scheduler, "b", 5, arrival=1, first_token=100)
    out, _ = step(scheduler, runner)
    assert out.num_scheduled_tokens == {"a": 5}
    out, _ = step(scheduler, runner)
    assert out.num_scheduled_tokens == {"a": 1, "b": 5}


def test_fcfs_preempts_the_newest_and_resumes_it_with_its_outputs():
    scheduler, runner = make(num_blocks=4, block_size=2, max_model_len=8, admission="greedy")
    a = add(scheduler, "a", 3, max_tokens=3, arrival=0)
    b = add(scheduler, "b", 3, max_tokens=5, arrival=1, first_token=100)
    out, _ = step(scheduler, runner)
    assert set(out.num_scheduled_tokens) == {"a", "b"}  # 2 blocks each: the pool is full
    out, _ = step(scheduler, runner)  # a: 4 tokens computed, fits; b likewise
    out, _ = step(scheduler, runner)  # a needs a third block: b, the newest, is the victim
    assert out.preempted_req_ids == {"b"} and out.num_scheduled_tokens == {"a": 1}
    assert b.status is RequestStatus.PREEMPTED and b.num_computed_tokens == 0
    assert "b" not in scheduler.kv_cache.block_tables
    outputs_before = tuple(b.output_token_ids)
    while a.status is RequestStatus.RUNNING:
        out, _ = step(scheduler, runner)
    out, _ = step(scheduler, runner)
    resumed = out.scheduled_new_reqs[0]
    assert resumed.req_id == "b" and resumed.output_token_ids == outputs_before
    assert len(outputs_before) == 2
    # a took b's freed tail block (the LRU evicts a request's tail first); b's first block is a hit
    assert resumed.num_computed_tokens == 2
    assert scheduler.num_preemptions == 1


def test_priority_policy_preempts_least_important_then_latest():
    scheduler, runner = make(num_blocks=6, block_size=2, max_model_len=12, policy="priority",
                             admission="greedy")
    add(scheduler, "low-old", 3, max_tokens=6, arrival=0, priority=5, first_token=0)
    add(scheduler, "high", 3, max_tokens=6, arrival=1, priority=0, first_token=10)
    add(scheduler, "low-new", 3, max_tokens=6, arrival=2, priority=5, first_token=20)
    out, _ = step(scheduler, runner)
    assert list(out.num_scheduled_tokens) == ["high", "low-old", "low-new"]  # admitted by priority
    order = []
    while scheduler.has_unfinished_requests():
        out, _ = step(scheduler, runner)
        order += sorted(out.preempted_req_ids)
    assert order[0] == "low-new"
    assert "high" not in order


def test_abort_running_and_waiting_requests_releases_everything():
    scheduler, runner = make(max_num_seqs=1)
    add(scheduler, "run", 6, arrival=0)
    add(scheduler, "wait", 6, arrival=1)
    step(scheduler, runner)
    assert scheduler.kv_cache.num_free_blocks < 32
    scheduler.finish_requests(["run", "wait", "unknown"], RequestStatus.FINISHED_ABORTED)
    assert not scheduler.has_unfinished_requests() and scheduler.kv_cache.num_free_blocks == 32
    out = scheduler.schedule()
    assert out.finished_req_ids == {"run"}  # the runner never saw "wait"
    runner.execute(out)
    assert runner.requests == {}


def test_stats_report_queues_usage_and_prefix_hits():
    scheduler, runner = make(max_num_seqs=1)
    add(scheduler, "a", 9)
    add(scheduler, "b", 9)
    step(scheduler, runner)
    stats = scheduler.stats()
    assert (stats.num_running_reqs, stats.num_waiting_reqs) == (1, 1)
    assert stats.kv_cache_usage == 3 / 32 and stats.prefix_cache_queries == 9


def test_a_prompt_larger_than_the_whole_pool_is_rejected():
    scheduler, _ = make(num_blocks=2, block_size=4, max_model_len=100)
    with pytest.raises(ValueError, match="needs 3 KV-cache blocks of 4 tokens but the whole pool has 2"):
        add(scheduler, "big", 9)
