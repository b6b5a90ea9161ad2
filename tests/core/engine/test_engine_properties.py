"""Property-based: random workloads, budgets and pools; invariants checked after every step.

The fake runner additionally checks the seam and the simulated KV cache each step.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plinth.sampling_params import SamplingParams
from plinth.sched.request import Request, RequestStatus
from plinth.testing.fake_runner import default_token_fn
from tests.core.engine.engine_harness import Result, make_engine

VOCAB = 8  # small, so EOS and stop token ids really occur
EOS = 0


def token_fn(ids):
    return default_token_fn(ids, VOCAB)


@dataclass
class Arrival:
    step: int
    rid: str
    prompt: list[int]
    params: SamplingParams
    priority: int
    salt: str | None


@st.composite
def workloads(draw):
    block_size = draw(st.sampled_from([1, 2, 4, 8]))
    num_blocks = draw(st.integers(2, 24))
    max_model_len = draw(st.integers(2, min(num_blocks * block_size, 64)))
    chunked = draw(st.booleans())
    budget = draw(st.integers(1, 40)) if chunked else draw(st.integers(max_model_len, max_model_len + 32))
    config = dict(num_blocks=num_blocks, block_size=block_size, max_model_len=max_model_len,
                  enable_chunked_prefill=chunked, max_num_batched_tokens=budget,
                  max_num_seqs=draw(st.integers(1, 8)), policy=draw(st.sampled_from(["fcfs", "priority"])),
                  prefix_caching=draw(st.sampled_from([True, True, False])))
    shared = draw(st.lists(st.integers(0, 3), max_size=max_model_len))  # a common prefix, often hit
    arrivals = []
    for i in range(draw(st.integers(1, 10))):
        own = draw(st.lists(st.integers(0, 3), min_size=1, max_size=max_model_len))
        cut = draw(st.integers(0, len(shared)))
        prompt = (shared[:cut] + own)[:max_model_len]
        max_tokens = draw(st.one_of(st.none(), st.integers(1, 12)))
        params = SamplingParams(
            max_tokens=max_tokens, min_tokens=draw(st.integers(0, max_tokens or 3)),
            ignore_eos=draw(st.booleans()), stop_token_ids=draw(st.lists(st.integers(1, VOCAB - 1), max_size=1)),
            n=draw(st.sampled_from([1, 1, 1, 2, 3])))
        arrivals.append(Arrival(draw(st.integers(0, 12)), f"r{i}", prompt, params, draw(st.integers(0, 3)),
                                draw(st.sampled_from([None, None, "salt"]))))
    aborts = draw(st.lists(st.tuples(st.integers(0, 30), st.integers(0, len(arrivals) - 1)), max_size=3))
    return config, arrivals, aborts


def reference(arrival: Arrival, rid: str, max_model_len: int) -> tuple[list[int], str]:
    """The tokens a request produces on its own: token_fn step by step, then the stop rules."""
    request = Request(rid, arrival.prompt, arrival.params, eos_token_id=EOS)
    while not request.append_output_token(token_fn(request.all_token_ids), max_model_len):
        pass
    return request.output_token_ids, request.finish_reason


def check_invariants(engine, out) -> None:
    sched, kv = engine.scheduler, engine.kv_cache
    config = engine.config.scheduler
    assert out.total_num_scheduled_tokens <= config.max_num_batched_tokens
    assert len(out.num_scheduled_tokens) <= config.max_num_seqs >= len(sched.running)
    running = {r.request_id for r in sched.running}
    assert set(kv.block_tables) == running
    assert all(r.status is RequestStatus.RUNNING for r in sched.running)
    for request in sched.waiting:
        assert request.num_computed_tokens == 0 and request.request_id not in kv.block_tables
    assert len(sched.waiting) + len(running) == len(sched.requests)
    holders: dict[int, int] = {}
    bs = kv.block_size
    for request in sched.running:
        table = kv.block_tables[request.request_id]
        assert len(table) == -(-request.num_computed_tokens // bs)
        assert len({b.block_id for b in table}) == len(table), "a request holds a block twice"
        tokens = request.all_token_ids
        for i, block in enumerate(table):
            holders[block.block_id] = holders.get(block.block_id, 0) + 1
            if block.block_hash is not None:  # cached or hit: its tokens really are this request's
                assert block.token_ids == tokens[i * bs:(i + 1) * bs]
    free = list(kv.pool.free_queue)
    assert len(free) == kv.num_free_blocks and len(free) + len(holders) == kv.num_blocks
    for block in kv.pool.blocks:
        assert block.ref_cnt == holders.get(block.block_id, 0)
        assert block.ref_cnt <= 1 or block.block_hash is not None, "only cached blocks are shared"
    assert all(block.block_hash == h for h, block in kv.pool.cached.items())
    if not kv.enable_prefix_caching:
        assert not kv.pool.cached and kv.prefix_cache_hits == 0


def run_workload(config, arrivals, aborts) -> None:
    engine = make_engine(token_fn=token_fn, **config)
    result, pending, aborted = Result(), sorted(arrivals, key=lambda a: a.step), set()
    ids_of: dict[str, list[str]] = {}
    max_steps = 40 + 4 * sum(len(a.prompt) + (a.params.max_tokens or 64) for a in arrivals) * 3
    step = 0
    while pending or engine.has_unfinished_requests():
        while pending and pending[0].step <= step:
            a = pending.pop(0)
            ids_of[a.rid] = engine.add_request(a.rid, a.prompt, a.params, eos_token_id=EOS, arrival_time=step,
                                               priority=a.priority, cache_salt=a.salt)
        for abort_step, index in aborts:
            if abort_step == step and arrivals[index].rid in ids_of:
                live = set(engine.scheduler.requests)
                result.record(engine.abort_request(ids_of[arrivals[index].rid]))
                aborted |= live & set(ids_of[arrivals[index].rid])
        result.record(engine.step())
        check_invariants(engine, engine.executor.last_scheduler_output)
        step += 1
        assert step < max_steps, f"no progress: {engine.scheduler.requests}"
    assert engine.kv_cache.num_free_blocks == engine.kv_cache.num_blocks
    assert engine.executor.requests == {} or engine.step() == [] and engine.executor.requests == {}
    for a in arrivals:
        for rid in ids_of[a.rid]:
            tokens, reason = reference(a, rid, engine.max_model_len)
            if rid in aborted:
                assert result.finish[rid] == "abort" and tokens[:len(result.tokens.get(rid, []))] == \
                    result.tokens.get(rid, [])
            else:
                assert (result.tokens[rid], result.finish[rid]) == (tokens, reason)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_random_workloads_keep_the_invariants_and_finish(workload):
    run_workload(*workload)
