"""KV-cache manager: block pool, LRU free queue, prefix caching, counters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plinth.sampling_params import SamplingParams
from plinth.sched.block_hash import ROOT_HASH, extend_block_hashes, extra_keys, hash_block
from plinth.sched.block_pool import BlockPool, FreeBlockQueue, KVBlock, NoFreeBlocksError
from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.request import Request


def make_request(rid, tokens, **kwargs):
    return Request(rid, tokens, SamplingParams(max_tokens=4), **kwargs)


def admit(kv, request, num_new=None):
    """Admit like the scheduler does; returns the prefix-hit length."""
    prefix = kv.find_cached_prefix(request)
    hit = len(prefix) * kv.block_size
    num_new = request.num_tokens - hit if num_new is None else num_new
    assert kv.can_allocate(request, num_new, prefix)
    kv.allocate(request, num_new, prefix)
    request.num_computed_tokens = hit + num_new
    return hit


def test_free_queue_is_lru_and_removes_from_the_middle():
    blocks = [KVBlock(i) for i in range(4)]
    queue = FreeBlockQueue(blocks)
    queue.remove(blocks[2])
    assert [b.block_id for b in queue] == [0, 1, 3]
    queue.append(blocks[2])
    assert [queue.popleft().block_id for _ in range(4)] == [0, 1, 3, 2]
    with pytest.raises(NoFreeBlocksError):
        queue.popleft()


def test_block_hashes_chain_and_cover_extra_keys():
    a = hash_block(ROOT_HASH, [1, 2])
    assert a == hash_block(ROOT_HASH, [1, 2])
    assert a != hash_block(ROOT_HASH, [2, 1])
    assert hash_block(a, [3, 4]) != hash_block(ROOT_HASH, [3, 4])
    assert hash_block(ROOT_HASH, [1, 2], extra_keys(None, (), "salt")) != a
    assert extra_keys(1, (), None) != extra_keys(2, (), None)
    assert extra_keys(None, ("img",), None) != b""
    hashes = []
    extend_block_hashes(hashes, [1, 2, 3, 4, 5], 2, 1)
    extend_block_hashes(hashes, [1, 2, 3, 4, 5], 2, 2)  # incremental: keeps the first
    assert hashes == [a, hash_block(a, [3, 4])]


def test_prefix_hit_shares_blocks_and_counts_tokens():
    kv = KVCacheManager(num_blocks=10, block_size=4)
    first = make_request("a", list(range(10)))
    assert admit(kv, first) == 0
    second = make_request("b", list(range(8)) + [99, 98, 97])
    assert admit(kv, second) == 8
    assert kv.block_ids("a")[:2] == kv.block_ids("b")[:2]
    assert kv.block_ids("a")[2] != kv.block_ids("b")[2]
    assert [b.ref_cnt for b in kv.block_tables["b"]] == [2, 2, 1]
    assert (kv.prefix_cache_queries, kv.prefix_cache_hits) == (21, 8)
    assert kv.num_free_blocks == 10 - 4


def test_last_token_is_always_computed():
    kv = KVCacheManager(num_blocks=10, block_size=4)
    admit(kv, make_request("a", list(range(8))))
    again = make_request("b", list(range(8)))
    assert admit(kv, again) == 4  # not 8: the last block holds the token to compute


def test_freed_blocks_keep_their_hash_until_recycled():
    kv = KVCacheManager(num_blocks=4, block_size=2)
    a = make_request("a", [1, 2, 3, 4, 5])
    admit(kv, a)
    kv.free(a)
    assert kv.num_free_blocks == 4 and kv.usage == 0.0 and len(kv.pool.cached) == 2
    assert admit(kv, make_request("b", [1, 2, 3, 4, 6])) == 4  # revived from the free queue
    assert kv.num_free_blocks == 1 and kv.usage == 0.75
    kv.free(make_request("x", [7]))  # an unknown request: nothing happens
    assert kv.num_free_blocks == 1


def test_lru_eviction_recycles_a_freed_request_tail_first():
    kv = KVCacheManager(num_blocks=4, block_size=2)
    a = make_request("a", [1, 2, 3, 4, 0])
    admit(kv, a)
    a_blocks = kv.block_ids("a")
    kv.free(a)
    assert [b.block_id for b in kv.pool.free_queue] == [3] + a_blocks[::-1]
    admit(kv, make_request("b", [9, 9, 9]))  # the never-used block and a's partial tail block
    admit(kv, make_request("c", [5, 0]))  # evicts a's [3, 4] before a's [1, 2]
    prefix = kv.find_cached_prefix(make_request("d", [1, 2, 3, 4, 7]))
    assert [b.block_id for b in prefix] == a_blocks[:1]


def test_token_equality_is_checked_on_a_hash_hit():
    kv = KVCacheManager(num_blocks=4, block_size=2)
    a = make_request("a", [1, 2, 3])
    admit(kv, a)
    block = kv.block_tables["a"][0]
    block.token_ids = [7, 7]  # pretend a hash collision: same hash, other tokens
    assert admit(kv, make_request("b", [1, 2, 3])) == 0


def test_cache_salt_and_lora_keep_prefixes_apart():
    kv = KVCacheManager(num_blocks=20, block_size=2)
    admit(kv, make_request("a", [1, 2, 3, 4, 5], cache_salt="alice"))
    assert admit(kv, make_request("b", [1, 2, 3, 4, 5], cache_salt="bob")) == 0
    assert admit(kv, make_request("c", [1, 2, 3, 4, 5], cache_salt="alice")) == 4
    assert admit(kv, make_request("d", [1, 2, 3, 4, 5], lora_id=3)) == 0
    assert admit(kv, make_request("e", [1, 2, 3, 4, 5])) == 0


def test_prefix_caching_off_never_hits():
    kv = KVCacheManager(num_blocks=10, block_size=2, enable_prefix_caching=False)
    admit(kv, make_request("a", [1, 2, 3, 4, 5]))
    assert admit(kv, make_request("b", [1, 2, 3, 4, 5])) == 0
    assert kv.pool.cached == {}
    assert kv.prefix_cache_hits == 0


def test_chunked_and_decode_growth_allocate_only_what_is_needed():
    kv = KVCacheManager(num_blocks=5, block_size=4)
    r = make_request("a", list(range(10)))
    assert admit(kv, r, num_new=3) == 0
    assert len(kv.block_tables["a"]) == 1
    assert kv.allocate(r, 6) != []  # 9 tokens: 3 blocks
    r.num_computed_tokens = 9
    assert kv.allocate(r, 1) == []  # the 10th fits block 3
    r.num_computed_tokens = 10
    r.all_token_ids += [1, 2, 3]
    assert kv.num_blocks_to_take(r, 3) == 1
    assert not kv.can_allocate(r, 11)
    with pytest.raises(NoFreeBlocksError):
        kv.allocate(r, 11)


def test_preempted_in_the_scheduling_step_uncaches_uncomputed_blocks():
    kv = KVCacheManager(num_blocks=4, block_size=2)
    r = make_request("a", [1, 2, 3, 4, 5])
    prefix = kv.find_cached_prefix(r)
    kv.allocate(r, 5, prefix)  # caches [1,2], [3,4] at scheduling time
    assert len(kv.pool.cached) == 2
    kv.free(r)  # num_computed_tokens is still 0: nothing was computed
    assert kv.pool.cached == {}


def test_block_pool_rejects_empty_pool():
    with pytest.raises(ValueError, match="at least one block"):
        BlockPool(0)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_random_allocate_free_keeps_ref_counts_exact(data):
    block_size = data.draw(st.sampled_from([1, 2, 4]))
    num_blocks = data.draw(st.integers(4, 24))
    kv = KVCacheManager(num_blocks, block_size, data.draw(st.booleans()))
    live: dict[str, Request] = {}
    for step in range(data.draw(st.integers(1, 30))):
        if live and data.draw(st.booleans()):
            rid = data.draw(st.sampled_from(sorted(live)))
            kv.free(live.pop(rid))
        else:
            tokens = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4 * block_size))
            r = make_request(f"r{step}", tokens)
            prefix = kv.find_cached_prefix(r)
            for i, block in enumerate(prefix):  # hits only where the tokens match
                assert block.token_ids == tokens[i * block_size:(i + 1) * block_size]
            num_new = len(tokens) - len(prefix) * block_size
            if kv.can_allocate(r, num_new, prefix):
                kv.allocate(r, num_new, prefix)
                r.num_computed_tokens = len(tokens)
                live[r.request_id] = r
            else:
                with pytest.raises(NoFreeBlocksError):
                    kv.allocate(r, num_new, prefix)
                kv.free(r)
        check_pool(kv, live)


def check_pool(kv: KVCacheManager, live: dict) -> None:
    holders: dict[int, int] = {}
    for rid, table in kv.block_tables.items():
        assert rid in live
        assert len({b.block_id for b in table}) == len(table)
        for b in table:
            holders[b.block_id] = holders.get(b.block_id, 0) + 1
    free = list(kv.pool.free_queue)
    assert len(free) == kv.num_free_blocks
    assert {b.block_id for b in free}.isdisjoint(holders)
    assert len(free) + len(holders) == kv.num_blocks
    for block in kv.pool.blocks:
        assert block.ref_cnt == holders.get(block.block_id, 0)
        if block.ref_cnt > 1:
            assert block.block_hash is not None  # only cached blocks are shared
    for block_hash, block in kv.pool.cached.items():
        assert block.block_hash == block_hash
