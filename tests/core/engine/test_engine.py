"""The engine loop on the fake runner: validation, stop rules, abort, prefix caching, n > 1, pressure."""

from __future__ import annotations

import random

import pytest

from plinth.config import ConfigError
from plinth.sampling_params import SamplingParams
from tests.core.engine.engine_harness import drive, make_engine


def scripted(tokens):
    """A token_fn that emits ``tokens`` by output position (prompts here are 4 tokens long)."""
    return lambda ids: tokens[len(ids) - 4]


def run_one(script, eos=None, max_model_len=None, **params):
    engine = make_engine(token_fn=scripted(script), max_model_len=max_model_len)
    engine.add_request("r", [1, 2, 3, 4], SamplingParams(**params), eos_token_id=eos)
    result = drive(engine)
    return result.tokens["r"], result.finish["r"], result.stop_reason["r"]


def test_step_reads_as_schedule_execute_update():
    engine = make_engine()
    engine.add_request("r", [1, 2, 3], SamplingParams(max_tokens=2))
    first = engine.step()
    assert [(o.request_id, len(o.new_token_ids), o.finish_reason) for o in first] == [("r", 1, None)]
    assert engine.step()[0].finish_reason == "length" and not engine.has_unfinished_requests()
    assert engine.step() == []


def test_stop_rules():
    script = [5, 0, 7, 0, 9, 9, 9, 9, 9, 9]
    assert run_one(script, max_tokens=3) == ([5, 0, 7], "length", None)
    assert run_one(script, eos=0, max_tokens=9) == ([5, 0], "stop", None)
    assert run_one(script, eos=0, max_tokens=5, ignore_eos=True) == (script[:5], "length", None)
    assert run_one(script, max_tokens=9, stop_token_ids=[7]) == ([5, 0, 7], "stop", 7)
    assert run_one(script, eos=0, max_tokens=9, min_tokens=3) == ([5, 0, 7, 0], "stop", None)
    assert run_one(script, max_tokens=None, max_model_len=10) == (script[:6], "length", None)


def test_validation_errors_say_what_to_do():
    engine = make_engine(num_blocks=8, block_size=4, max_model_len=16)
    with pytest.raises(ValueError, match=r"17 tokens.*max_model_len=16"):
        engine.add_request("r", list(range(17)), SamplingParams())
    with pytest.raises(ValueError, match="empty prompt"):
        engine.add_request("r", [], SamplingParams())
    engine.add_request("r", [1], SamplingParams())
    with pytest.raises(ValueError, match="already in use"):
        engine.add_request("r", [1], SamplingParams())
    with pytest.raises(ValueError, match="already in use"):
        engine.add_request("1_r", [1], SamplingParams())  # fine alone ...
        engine.add_request("r", [1], SamplingParams(n=2))  # ... but a sibling id clashes
    with pytest.raises(ConfigError, match="does not fit the KV cache"):
        make_engine(num_blocks=4, block_size=4, max_model_len=17)
    with pytest.raises(ConfigError, match="chunked prefill"):
        make_engine(num_blocks=8, max_num_batched_tokens=8, enable_chunked_prefill=False)
    with pytest.raises(ConfigError, match="policy"):
        make_engine(policy="lifo")
    with pytest.raises(ConfigError, match="'forecast' or 'greedy'"):
        make_engine(admission="eager")
    with pytest.raises(ValueError, match="finish reason"):
        engine.finish_requests(["r"], "done")


def test_abort_running_and_waiting():
    engine = make_engine(num_blocks=16, max_num_seqs=1)
    engine.add_request("run", [1, 2, 3, 4, 5], SamplingParams(max_tokens=50))
    engine.add_request("wait", [6, 7, 8], SamplingParams(max_tokens=50))
    engine.step()
    outputs = engine.abort_request(["run", "wait", "never-seen"])
    assert [(o.request_id, o.finish_reason) for o in outputs] == [("run", "abort"), ("wait", "abort")]
    assert not engine.has_unfinished_requests() and engine.kv_cache.num_free_blocks == 16
    engine.step()
    assert engine.executor.requests == {}  # the runner was told to drop "run"


def test_finish_requests_is_the_stop_string_hook():
    engine = make_engine()
    engine.add_request("r", [1, 2, 3], SamplingParams(max_tokens=50))
    engine.step()
    engine.finish_requests(["r"], "stop")
    assert not engine.has_unfinished_requests() and engine.kv_cache.usage == 0.0
    assert engine.step() == []


def test_shared_system_prompt_hits_the_prefix_cache():
    engine = make_engine(num_blocks=64, block_size=4)
    system = list(range(1000, 1032))  # 8 full blocks
    for i in range(4):
        engine.add_request(f"r{i}", system + [i] * 5, SamplingParams(max_tokens=3))
    result = drive(engine)
    assert [result.cached[f"r{i}"] for i in range(4)] == [0, 32, 32, 32]
    stats = engine.stats()
    assert (stats.prefix_cache_queries, stats.prefix_cache_hits) == (4 * 37, 3 * 32)


def test_cache_salt_separates_and_switching_off_disables_sharing():
    for salts, caching, expected in [(["a", "b"], True, 0), (["a", "a"], True, 8), ([None, None], False, 0)]:
        engine = make_engine(prefix_caching=caching)
        for i, salt in enumerate(salts):
            engine.add_request(f"r{i}", list(range(10)), SamplingParams(max_tokens=2), cache_salt=salt)
        result = drive(engine)
        assert result.cached["r1"] == expected
        assert engine.stats().prefix_cache_hits == expected


def test_n_siblings_share_the_prompt_blocks():
    engine = make_engine(num_blocks=32, block_size=4)
    ids = engine.add_request("p", list(range(10)), SamplingParams(max_tokens=4, n=3, seed=7))
    assert ids == ["0_p", "1_p", "2_p"]
    engine.step()
    tables = [engine.kv_cache.block_tables[rid] for rid in ids]
    assert tables[0][:2] == tables[1][:2] == tables[2][:2]
    assert all(block.ref_cnt == 3 for block in tables[0][:2])
    seeds = [engine.scheduler.requests[rid].sampling_params.seed for rid in ids]
    assert seeds == [7, 8, 9]
    result = drive(engine)
    assert [result.cached[rid] for rid in ids] == [0, 8, 8]


def random_workload(seed, num_requests=40):
    rng = random.Random(seed)
    system = [rng.randrange(1000) for _ in range(12)]
    work = []
    for i in range(num_requests):
        prompt = (system if rng.random() < 0.5 else []) + [rng.randrange(1000) for _ in range(rng.randint(1, 30))]
        work.append((f"r{i}", prompt, SamplingParams(max_tokens=rng.randint(1, 25)), rng.randrange(3)))
    return work


@pytest.mark.parametrize("admission", ["greedy", "forecast"])
@pytest.mark.parametrize("policy", ["fcfs", "priority"])
@pytest.mark.parametrize("seed", range(3))
def test_kv_pressure_gives_the_same_tokens(seed, policy, admission):
    work = random_workload(seed)

    def run(num_blocks, **scheduler):
        engine = make_engine(num_blocks=num_blocks, block_size=4, max_model_len=64, policy=policy,
                             admission=admission, **scheduler)
        for rid, prompt, params, priority in work:
            engine.add_request(rid, prompt, params, eos_token_id=3, priority=priority)
        return drive(engine), engine

    reference, _ = run(1024, max_num_seqs=256, max_num_batched_tokens=4096)
    pressured, engine = run(16, max_num_seqs=8, max_num_batched_tokens=24)  # 64 tokens of KV for 40 requests
    if admission == "greedy":
        assert engine.stats().num_preemptions > 0
    assert pressured.tokens == reference.tokens
    assert pressured.finish == reference.finish
