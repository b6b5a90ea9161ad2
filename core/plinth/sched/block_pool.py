"""The pool of fixed-size KV-cache blocks: reference counts, an LRU free queue, the prefix cache."""

from __future__ import annotations

from plinth.sched.block_hash import BlockHash


class NoFreeBlocksError(RuntimeError):
    """More blocks were asked for than are free; call ``can_allocate`` first."""


class KVBlock:
    """One block of ``block_size`` token slots in every layer's KV cache."""

    __slots__ = ("block_id", "ref_cnt", "block_hash", "token_ids", "prev_free", "next_free")

    def __init__(self, block_id: int) -> None:
        self.block_id = block_id  # index into the device's KV-cache tensors
        self.ref_cnt = 0  # number of requests whose block table holds this block
        self.block_hash: BlockHash | None = None  # set while the block is in the prefix cache
        self.token_ids: list[int] | None = None  # the tokens the hash covers, for the equality check
        self.prev_free: KVBlock | None = None  # free-queue links; None when not in the queue
        self.next_free: KVBlock | None = None

    def __repr__(self) -> str:
        return f"KVBlock({self.block_id}, ref_cnt={self.ref_cnt}, cached={self.block_hash is not None})"


class FreeBlockQueue:
    """Doubly linked list of free blocks: pop from the head, return to the tail.

    The head is the least recently freed block, so taking from it evicts cached
    blocks in LRU order. Removing a block from the middle (a prefix-cache hit on a
    free block) is O(1).
    """

    def __init__(self, blocks: list[KVBlock]) -> None:
        self._head = KVBlock(-1)  # sentinels
        self._tail = KVBlock(-1)
        self._head.next_free = self._tail
        self._tail.prev_free = self._head
        self.num_free_blocks = 0
        for block in blocks:
            self.append(block)

    def popleft(self) -> KVBlock:
        block = self._head.next_free
        if block is self._tail:
            raise NoFreeBlocksError("no free KV-cache blocks")
        self.remove(block)
        return block

    def remove(self, block: KVBlock) -> None:
        block.prev_free.next_free = block.next_free
        block.next_free.prev_free = block.prev_free
        block.prev_free = block.next_free = None
        self.num_free_blocks -= 1

    def append(self, block: KVBlock) -> None:
        last = self._tail.prev_free
        last.next_free = block
        block.prev_free = last
        block.next_free = self._tail
        self._tail.prev_free = block
        self.num_free_blocks += 1

    def __iter__(self):
        block = self._head.next_free
        while block is not self._tail:
            yield block
            block = block.next_free


class BlockPool:
    """All blocks, the free queue and the prefix cache (block hash → block).

    A freed block keeps its hash, and stays findable, until it is recycled.
    """

    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got {num_blocks}")
        self.blocks = [KVBlock(i) for i in range(num_blocks)]
        self.free_queue = FreeBlockQueue(self.blocks)
        self.cached: dict[BlockHash, KVBlock] = {}

    @property
    def num_free_blocks(self) -> int:
        return self.free_queue.num_free_blocks

    def take(self, n: int) -> list[KVBlock]:
        """Take ``n`` free blocks for a request (ref count 1), evicting their old cache entries."""
        if n > self.free_queue.num_free_blocks:
            raise NoFreeBlocksError(f"asked for {n} KV-cache blocks, {self.num_free_blocks} free")
        taken = []
        for _ in range(n):
            block = self.free_queue.popleft()
            if block.block_hash is not None:
                self.uncache(block)
            block.ref_cnt = 1
            taken.append(block)
        return taken

    def touch(self, blocks: list[KVBlock]) -> None:
        """Add a holder to each block (a prefix-cache hit); free ones leave the free queue."""
        for block in blocks:
            if block.ref_cnt == 0:
                self.free_queue.remove(block)
            block.ref_cnt += 1

    def release(self, blocks: list[KVBlock]) -> None:
        """Drop a holder from each block; blocks nobody holds go to the free queue's tail in order."""
        for block in blocks:
            block.ref_cnt -= 1
            if block.ref_cnt == 0:
                self.free_queue.append(block)

    def cache(self, block: KVBlock, block_hash: BlockHash, token_ids: list[int]) -> None:
        """Make a full block findable by its hash; a hash already cached keeps its block."""
        if block.block_hash is not None or block_hash in self.cached:
            return
        block.block_hash = block_hash
        block.token_ids = token_ids
        self.cached[block_hash] = block

    def uncache(self, block: KVBlock) -> None:
        if self.cached.get(block.block_hash) is block:
            del self.cached[block.block_hash]
        block.block_hash = None
        block.token_ids = None

    def lookup(self, block_hash: BlockHash, token_ids: list[int]) -> KVBlock | None:
        """The cached block with this hash whose tokens really are ``token_ids``, if any."""
        block = self.cached.get(block_hash)
        if block is None or block.token_ids != token_ids:
            return None
        return block
