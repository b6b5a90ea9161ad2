"""KV-forecast admission: the projection against a step-by-step count, the learned fraction, the scheduler."""

from __future__ import annotations

import random

import pytest

from plinth.config import SchedulerConfig
from plinth.sampling_params import SamplingParams
from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.kv_forecast import AdmissionPlan, KVForecast
from plinth.sched.request import Request
from plinth.sched.scheduler import Scheduler
from plinth.testing.fake_runner import FakeRunner


def _exact_peak(rows, block_size):
    """The most blocks the rows need beyond what they hold, counted at every future step."""
    peak = float("-inf")
    for t in range(max(r[0] for r in rows) + 1):
        need = 0
        for steps, tokens, held, kept in rows:
            if t <= steps:
                need += -(-(tokens + t) // block_size) - held
            else:
                need -= held - kept
        peak = max(peak, need)
    return peak


@pytest.mark.parametrize("seed", range(40))
def test_peak_bounds_the_step_by_step_count(seed):
    rng = random.Random(seed)
    bs = rng.choice([1, 4, 16])
    rows = []
    for _ in range(rng.randint(1, 12)):
        tokens = rng.randint(1, 200)
        held = rng.randint(0, -(-tokens // bs))  # a chunked prefill holds part of its prompt
        rows.append((rng.randint(0, 60), tokens, held, rng.randint(0, held)))
    exact = _exact_peak(rows, bs)
    plan = AdmissionPlan([], 0, bs)
    forecast = plan._peak_need(rows)
    # never below the truth (admission stays safe), at most one block per row above it (the rounding)
    assert exact <= forecast <= exact + len(rows)
    assert AdmissionPlan(rows[:-1], exact + len(rows), bs).admit(*rows[-1])
    assert not AdmissionPlan(rows[:-1], exact - 1, bs).admit(*rows[-1])


def _scheduler(num_blocks, admission, max_num_seqs=64, block_size=4):
    kv = KVCacheManager(num_blocks, block_size, enable_prefix_caching=False)
    config = SchedulerConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=512, admission=admission)
    return Scheduler(config, kv, max_model_len=num_blocks * block_size)


def _run(scheduler, requests):
    """Drive to the end with a fake runner; returns (steps, tokens computed, tokens per request)."""
    for r in requests:
        scheduler.add_request(r)
    runner = FakeRunner(scheduler.kv_cache.num_blocks, scheduler.kv_cache.block_size)
    steps = computed = 0
    while scheduler.has_unfinished_requests():
        out = scheduler.schedule()
        computed += out.total_num_scheduled_tokens
        scheduler.update(out, runner.execute(out))
        steps += 1
        assert steps < 10_000
    return steps, computed, {r.request_id: list(r.output_token_ids) for r in requests}


def _same_length_requests(n, prompt, output):
    return [Request(str(i), [(7 * i + j) % 500 for j in range(prompt)],
                    SamplingParams(max_tokens=output, ignore_eos=True), arrival_time=i) for i in range(n)]


def test_known_lengths_finish_without_preemption_and_less_work():
    # 24 requests of 32 + 32 tokens in 256 blocks of 4: all prompts fit at once, not all outputs
    results = {}
    for admission in ("greedy", "forecast"):
        scheduler = _scheduler(256, admission)
        results[admission] = _run(scheduler, _same_length_requests(24, 32, 32)), scheduler.num_preemptions
    (g_steps, g_work, g_tokens), g_preempt = results["greedy"]
    (f_steps, f_work, f_tokens), f_preempt = results["forecast"]
    assert g_preempt > 0 and f_preempt == 0
    assert f_tokens == g_tokens
    assert f_work == 24 * (32 + 32 - 1) < g_work  # no recompute: every prompt and output token once


def test_admits_only_what_the_pool_holds_at_the_end():
    scheduler = _scheduler(64, "forecast")  # 256 tokens of KV
    requests = _same_length_requests(6, 20, 40)  # 60 tokens (15 blocks) each at the end
    running = []
    original = scheduler.schedule

    def schedule():
        out = original()
        running.append(len(scheduler.running))
        return out

    scheduler.schedule = schedule
    _run(scheduler, requests)
    assert running[0] == 4  # 4 x 15 = 60 blocks fit 64; a fifth would not (greedy takes all 6)
    assert max(running) == 4 and scheduler.num_preemptions == 0


def test_a_lone_request_runs_even_if_its_forecast_does_not_fit():
    scheduler = _scheduler(16, "forecast")  # 64 tokens of KV
    request = Request("big", list(range(10)), SamplingParams(max_tokens=500, ignore_eos=True))
    steps, _, tokens = _run(scheduler, [request])
    assert len(tokens["big"]) == 64 - 10  # ran to max_model_len: nothing else was waiting on it


def test_fraction_learns_from_early_stops_and_a_preemption_resets_it():
    forecast = KVForecast(block_size=4, max_model_len=4096, initial_fraction=0.7, weight=0.5)
    early = Request("a", [1, 2, 3], SamplingParams(max_tokens=100), eos_token_id=2)
    early.output_token_ids = [5] * 10  # stopped at 10 of 100
    forecast.observe_finished(early)
    assert forecast.fraction == pytest.approx(0.7 + 0.5 * (0.1 - 0.7))
    known = Request("b", [1, 2, 3], SamplingParams(max_tokens=100, ignore_eos=True))
    known.output_token_ids = [5] * 10
    before = forecast.fraction
    forecast.observe_finished(known)  # its length was known: no lesson for the others
    assert forecast.fraction == before
    assert not early.runs_to_length and known.runs_to_length
    forecast.observe_preemption()
    assert forecast.fraction == 1.0


def test_steps_left_uses_the_fraction_only_where_eos_can_stop():
    forecast = KVForecast(block_size=4, max_model_len=1000, horizon=300, initial_fraction=0.5)
    free = Request("a", [1] * 10, SamplingParams(max_tokens=100), eos_token_id=2)
    known = Request("b", [1] * 10, SamplingParams(max_tokens=100, ignore_eos=True))
    stop_string = Request("c", [1] * 10, SamplingParams(max_tokens=100, ignore_eos=True, stop=["x"]))
    unbounded = Request("d", [1] * 10, SamplingParams(max_tokens=None, ignore_eos=True))
    assert forecast.steps_left(free) == 50
    assert forecast.steps_left(known) == 100
    assert forecast.steps_left(stop_string) == 50
    assert forecast.steps_left(unbounded) == 300  # no further ahead than the horizon


def test_shared_prefix_blocks_do_not_count_against_admission():
    kv = KVCacheManager(40, 4, enable_prefix_caching=True)
    scheduler = Scheduler(SchedulerConfig(max_num_batched_tokens=512), kv, max_model_len=160)
    shared = list(range(100, 164))  # 16 blocks every request shares
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    requests = [Request(str(i), shared + [i], params, arrival_time=i) for i in range(3)]
    runner = FakeRunner(40, 4)
    scheduler.add_request(requests[0])
    out = scheduler.schedule()
    scheduler.update(out, runner.execute(out))
    for r in requests[1:]:
        scheduler.add_request(r)
    scheduler.schedule()
    # counted whole, three prompts of 17 blocks + growth would need ~57 blocks of 40; shared, they fit
    assert len(scheduler.running) == 3
