"""Chained sha256 hashes of full KV-cache blocks, the keys of the prefix cache.

A block's hash covers its parent block's hash, its token ids and the request's
extra keys (LoRA id, multimodal input hashes, cache salt), so equal hashes mean
equal prefixes for the same adapter, inputs and tenant.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

BlockHash = bytes

# The parent of a request's first block; a constant so hashes are stable across runs.
ROOT_HASH: BlockHash = hashlib.sha256(b"plinth-prefix-cache-root").digest()


def extra_keys(lora_id: int | None, mm_hashes: Sequence[str], cache_salt: str | None) -> bytes:
    """The bytes that keep otherwise equal prefixes apart; empty when there are none.

    They enter the first block's hash only: chaining carries them to every later block.
    """
    if lora_id is None and not mm_hashes and cache_salt is None:
        return b""
    return repr((lora_id, tuple(mm_hashes), cache_salt)).encode()


def hash_block(parent: BlockHash, token_ids: Sequence[int], extra: bytes = b"") -> BlockHash:
    """sha256 over (parent hash, token ids, extra keys)."""
    h = hashlib.sha256(parent)
    h.update(array("q", token_ids).tobytes())
    if extra:
        h.update(extra)
    return h.digest()


def extend_block_hashes(
    block_hashes: list[BlockHash], token_ids: Sequence[int], block_size: int,
    num_blocks: int, extra: bytes = b"",
) -> None:
    """Append hashes to ``block_hashes`` until it covers ``num_blocks`` full blocks.

    Incremental: hashes already there are kept, so each block is hashed once.
    """
    start = len(block_hashes)
    parent = block_hashes[-1] if start else ROOT_HASH
    for i in range(start, num_blocks):
        parent = hash_block(parent, token_ids[i * block_size:(i + 1) * block_size],
                            extra if i == 0 else b"")
        block_hashes.append(parent)
