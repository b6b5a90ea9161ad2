"""The weight arena hands out aligned, disjoint tensors that survive their arena."""

from __future__ import annotations

import torch

from plinth_cpu.weight_arena import ALIGN, HUGE_PAGE, WeightArena


def test_tensors_are_aligned_disjoint_and_keep_their_chunk():
    arena = WeightArena(chunk_bytes=HUGE_PAGE)
    tensors = [arena.empty((n, 3), torch.bfloat16) for n in (5, 1000, 7, 400_000, 2)]
    for i, t in enumerate(tensors):
        assert t.data_ptr() % ALIGN == 0 and t.is_contiguous()
        t.fill_(i)
    for i, t in enumerate(tensors):  # no tensor overwrote another
        assert bool((t == i).all())
    big = tensors[3]  # larger than a chunk: its own chunk, starting on a huge-page boundary
    assert big.data_ptr() % HUGE_PAGE == 0
    del arena
    assert float(big.float().sum()) == 3 * big.numel()


def test_packed_weights_from_the_arena_equal_plain_ones():
    from plinth_cpu.gemv import pack_pairs

    weight = torch.randn(50, 33).bfloat16()
    assert torch.equal(pack_pairs(weight, WeightArena()).packed, pack_pairs(weight).packed)
