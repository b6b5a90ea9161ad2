"""A tiny paged-KV driver for model tests: flat batches, block tables, metadata."""

from __future__ import annotations

import torch

from plinth.model.forward_context import ForwardContext, forward_context
from plinth.platform.attention import CommonAttentionMetadata


class PagedDriver:
    """Runs a model over steps of ``{request: new token ids}`` with a paged KV cache.

    Each request gets fresh blocks as it grows (block ids handed out in order, so
    requests' blocks interleave like a real allocator's).
    """

    def __init__(self, model, backend, dtype=torch.float32, num_blocks: int = 128, device="cpu") -> None:
        self.model, self.backend, self.device = model, backend, torch.device(device)
        specs = model.kv_cache_spec()
        self.block_size = specs[0].block_size
        self.kv_caches = [
            torch.zeros(backend.kv_cache_shape(num_blocks, s.block_size, s.num_kv_heads, s.head_size), dtype=dtype,
                        device=self.device)
            for s in specs
        ]
        self.num_blocks, self.next_block = num_blocks, 0
        self.blocks: dict[str, list[int]] = {}
        self.num_computed: dict[str, int] = {}

    def _grow(self, req: str, length: int) -> list[int]:
        blocks = self.blocks.setdefault(req, [])
        while len(blocks) * self.block_size < length:
            if self.next_block >= self.num_blocks:
                raise RuntimeError("test KV cache is full; raise num_blocks")
            blocks.append(self.next_block)
            self.next_block += 1
        return blocks

    def metadata(self, step: dict[str, list[int]]) -> tuple[torch.Tensor, torch.Tensor, CommonAttentionMetadata]:
        ids, positions, slots, starts, seq_lens, tables = [], [], [], [0], [], []
        for req, tokens in step.items():
            start = self.num_computed.get(req, 0)
            end = start + len(tokens)
            blocks = self._grow(req, end)
            for pos in range(start, end):
                slots.append(blocks[pos // self.block_size] * self.block_size + pos % self.block_size)
            ids += tokens
            positions += range(start, end)
            starts.append(starts[-1] + len(tokens))
            seq_lens.append(end)
            tables.append(blocks)
        width = max(len(t) for t in tables)
        dev = self.device
        table = torch.tensor([t + [0] * (width - len(t)) for t in tables], dtype=torch.int32, device=dev)
        qsl = torch.tensor(starts, dtype=torch.int32)
        sl = torch.tensor(seq_lens, dtype=torch.int32)
        md = CommonAttentionMetadata(
            query_start_loc=qsl.to(dev), query_start_loc_cpu=qsl, seq_lens=sl.to(dev), seq_lens_cpu=sl,
            block_table=table, slot_mapping=torch.tensor(slots, dtype=torch.int64, device=dev), num_reqs=len(step),
            num_actual_tokens=len(ids), max_query_len=max(len(t) for t in step.values()),
            max_seq_len=max(seq_lens),
        )
        return torch.tensor(ids, device=dev), torch.tensor(positions, device=dev), md

    def step(self, step: dict[str, list[int]]) -> dict[str, torch.Tensor]:
        """Run one flat batch; returns each request's logits ``[new_tokens, vocab]``."""
        input_ids, positions, md = self.metadata(step)
        with torch.no_grad(), forward_context(ForwardContext(self.backend.build_metadata(md), self.kv_caches)):
            hidden = self.model(input_ids, positions)
            logits = self.model.compute_logits(hidden)
        out, offset = {}, 0
        for req, tokens in step.items():
            out[req] = logits[offset:offset + len(tokens)].cpu()
            offset += len(tokens)
            self.num_computed[req] = self.num_computed.get(req, 0) + len(tokens)
        return out
