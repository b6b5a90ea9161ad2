"""The paged KV-cache manager: block tables per request, on top of the block pool and prefix cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.sched.block_hash import extend_block_hashes
from plinth.sched.block_pool import BlockPool, KVBlock

if TYPE_CHECKING:
    from plinth.sched.request import Request

_NO_BLOCKS: list[int] = []  # returned (never mutated) when no block is added


class KVCacheManager:
    """Gives each request the blocks its tokens need; shares full blocks through prefix caching.

    Verb pairs: ``can_allocate``/``allocate`` (check, then take), ``free`` (give back).
    A full block is cached as soon as its tokens are scheduled: the runner writes a
    step's KV before any attention in that step reads it, so a request admitted in
    the same step may already share it.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True) -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.enable_prefix_caching = enable_prefix_caching
        self.pool = BlockPool(num_blocks)
        self.block_tables: dict[str, list[KVBlock]] = {}  # request id → its blocks, in order
        self._num_cached_blocks: dict[str, int] = {}  # request id → leading blocks already cached
        self.prefix_cache_queries = 0  # prompt tokens looked up (metrics)
        self.prefix_cache_hits = 0  # of those, tokens found in the cache (metrics)

    @property
    def num_free_blocks(self) -> int:
        return self.pool.num_free_blocks

    @property
    def usage(self) -> float:
        """Fraction of blocks held by requests (cached-but-free blocks count as free)."""
        return 1.0 - self.pool.num_free_blocks / self.num_blocks

    def block_ids(self, request_id: str) -> list[int]:
        return [block.block_id for block in self.block_tables.get(request_id, ())]

    def find_cached_prefix(self, request: Request) -> list[KVBlock]:
        """The longest run of cached blocks matching the request's leading tokens.

        Never the whole sequence: the last token is always computed, so the runner
        has logits to sample from. Pure: counts nothing, takes nothing.
        """
        if not self.enable_prefix_caching:
            return []
        bs = self.block_size
        max_blocks = (request.num_tokens - 1) // bs
        hashes = request.block_hashes
        tokens = request.all_token_ids
        if len(hashes) < max_blocks:
            extend_block_hashes(hashes, tokens, bs, max_blocks, request.hash_extra_keys)
        lookup = self.pool.lookup
        prefix = []
        for i in range(max_blocks):
            block = lookup(hashes[i], tokens[i * bs:(i + 1) * bs])
            if block is None:
                break
            prefix.append(block)
        return prefix

    def num_blocks_to_take(self, request: Request, num_new_tokens: int,
                           cached_prefix: list[KVBlock] | None = None) -> int:
        """Free blocks that ``allocate`` with these arguments would consume."""
        bs = self.block_size
        if cached_prefix is None:
            total = request.num_computed_tokens + num_new_tokens
            return max(0, -(-total // bs) - len(self.block_tables[request.request_id]))
        total = len(cached_prefix) * bs + num_new_tokens
        revived = sum(1 for block in cached_prefix if block.ref_cnt == 0)  # leave the free queue
        return -(-total // bs) - len(cached_prefix) + revived

    def can_allocate(self, request: Request, num_new_tokens: int,
                     cached_prefix: list[KVBlock] | None = None) -> bool:
        """Whether ``allocate`` with the same arguments would succeed."""
        if cached_prefix is None:  # the hot path: a running request, usually within its last block
            total = request.num_computed_tokens + num_new_tokens
            held = len(self.block_tables[request.request_id]) * self.block_size
            if total <= held:
                return True
        return self.num_blocks_to_take(request, num_new_tokens, cached_prefix) <= self.pool.free_queue.num_free_blocks

    def allocate(self, request: Request, num_new_tokens: int,
                 cached_prefix: list[KVBlock] | None = None) -> list[int]:
        """Give the request slots for ``num_new_tokens`` more tokens; returns the new block ids.

        ``cached_prefix`` (from ``find_cached_prefix``) marks an admission: the request
        holds no blocks yet and starts from those; the lookup is counted in the metrics.
        Raises ``NoFreeBlocksError`` if ``can_allocate`` would have said no.
        """
        bs = self.block_size
        rid = request.request_id
        if cached_prefix is not None:
            self.pool.touch(cached_prefix)
            table = self.block_tables[rid] = list(cached_prefix)
            self._num_cached_blocks[rid] = len(cached_prefix)
            num_computed = len(cached_prefix) * bs
            self.prefix_cache_queries += len(request.all_token_ids)
            self.prefix_cache_hits += num_computed
        else:
            table = self.block_tables[rid]
            num_computed = request.num_computed_tokens
        total = num_computed + num_new_tokens
        need = -(-total // bs) - len(table)
        new_block_ids = _NO_BLOCKS
        if need > 0:
            new_blocks = self.pool.take(need)
            table.extend(new_blocks)
            new_block_ids = [block.block_id for block in new_blocks]
        # only blocks of known tokens are hashed: under async scheduling the last slot may hold a sampled token
        # still on its way (a placeholder), and its block is cached at the next allocation, one step later
        num_full = min(total, len(request.all_token_ids)) // bs
        if self.enable_prefix_caching and num_full > self._num_cached_blocks[rid]:
            self._cache_full_blocks(request, table, num_full)
        return new_block_ids

    def _cache_full_blocks(self, request: Request, table: list[KVBlock], num_full: int) -> None:
        bs = self.block_size
        hashes = request.block_hashes
        tokens = request.all_token_ids
        if len(hashes) < num_full:
            extend_block_hashes(hashes, tokens, bs, num_full, request.hash_extra_keys)
        for i in range(self._num_cached_blocks[request.request_id], num_full):
            self.pool.cache(table[i], hashes[i], tokens[i * bs:(i + 1) * bs])
        self._num_cached_blocks[request.request_id] = num_full

    def free(self, request: Request) -> None:
        """Give back all the request's blocks (last block first, so it is evicted first).

        Blocks that were cached for tokens the request never got to compute (it was
        preempted in the step that scheduled them) lose their hash when nobody else holds them.
        """
        table = self.block_tables.pop(request.request_id, None)
        if table is None:
            return
        num_cached = self._num_cached_blocks.pop(request.request_id)
        self.pool.release(reversed(table))
        for block in table[request.num_computed_tokens // self.block_size:num_cached]:
            if block.ref_cnt == 0 and block.block_hash is not None:
                self.pool.uncache(block)

    def reset_prefix_cache(self) -> None:
        """Forget every cached-but-free block (e.g. after weights change)."""
        for block in self.pool.free_queue:
            if block.block_hash is not None:
                self.pool.uncache(block)
