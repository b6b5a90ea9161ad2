"""Turning a SchedulerOutput and the runner's request states into flat model inputs.

Inputs live in persistent device buffers (allocated once, sized for the largest step)
that are refilled every step from host staging buffers (pinned where the platform allows,
so the copies are asynchronous). Pinned staging is double-buffered: step N+1 is filled
while step N's copies may still be queued (async scheduling); the runner waits for step
N-1 before it refills N-1's half. Graph captures read the same device buffers, so a
replay sees each step's inputs; a batch padded to a captured size gets padding requests
with no query tokens, padding tokens with slot -1. A token sampled last step and not yet
on the host (a pending token) is written as 0 and listed in ``StepInputs.placeholders``:
the runner fills it on the device from the last step's sampled ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from plinth.platform.attention import CommonAttentionMetadata
from plinth.runner.request_state import RequestState


@dataclass(frozen=True)
class StepInputs:
    """One step's flat batch, on the device (views of the persistent buffers), plus what sampling needs."""

    req_ids: list[str]  # batch order
    input_ids: torch.Tensor  # int64 [num_tokens] (padded; with static shapes the whole buffer)
    positions: torch.Tensor  # int64 [num_tokens] (padded; with static shapes the whole buffer)
    metadata: CommonAttentionMetadata | None  # None with static shapes: the step makes its own views
    sample_rows: list[int]  # batch rows (indexes into req_ids) that sample a token this step
    logits_indices: torch.Tensor  # int64 [len(sample_rows)]: flat token index of each sampling row
    #   (static shapes: [max_reqs], the rows past len(sample_rows) point at token 0)
    placeholders: tuple[torch.Tensor, torch.Tensor] | None = None  # int64 (flat token indexes, indexes
    #   into the last step's sampled ids) of pending tokens, on the device; None when there are none


class _Pair:
    """A device buffer and its host staging twin (a numpy view of a possibly pinned tensor)."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, pin: bool) -> None:
        self._hosts = [torch.zeros(shape, dtype=dtype, pin_memory=pin) for _ in range(2 if pin else 1)]
        self.flip(0)
        self.device = torch.zeros(shape, dtype=dtype, device=device)

    def flip(self, half: int) -> None:
        """Fill the ``half``-th staging buffer from now on (a no-op without pinned memory)."""
        self.host_tensor = self._hosts[half % len(self._hosts)]
        self.host = self.host_tensor.numpy()

    def upload(self, n: int, cols: int | None = None) -> torch.Tensor:
        """Copy the first ``n`` rows (and ``cols`` columns) to the device, without waiting."""
        if cols is None:
            self.device[:n].copy_(self.host_tensor[:n], non_blocking=True)
        else:
            self.device[:n, :cols].copy_(self.host_tensor[:n, :cols], non_blocking=True)
        return self.device[:n]


class InputBuffers:
    """Persistent inputs for steps of up to ``max_tokens`` tokens and ``max_reqs`` requests."""

    def __init__(self, max_tokens: int, max_reqs: int, max_blocks_per_req: int, block_size: int,
                 device: torch.device, pin_memory: bool) -> None:
        self.max_tokens, self.max_reqs, self.block_size = max_tokens, max_reqs, block_size
        self.max_blocks_per_req = max_blocks_per_req
        self.input_ids = _Pair((max_tokens,), torch.int64, device, pin_memory)
        self.positions = _Pair((max_tokens,), torch.int64, device, pin_memory)
        self.slot_mapping = _Pair((max_tokens,), torch.int64, device, pin_memory)
        self.query_start_loc = _Pair((max_reqs + 1,), torch.int32, device, pin_memory)
        self.seq_lens = _Pair((max_reqs,), torch.int32, device, pin_memory)
        self.block_table = _Pair((max_reqs, max_blocks_per_req), torch.int32, device, pin_memory)
        self.logits_indices = _Pair((max_reqs,), torch.int64, device, pin_memory)
        self.placeholder_dst = _Pair((max_reqs,), torch.int64, device, pin_memory)
        self.placeholder_src = _Pair((max_reqs,), torch.int64, device, pin_memory)
        self._pairs = (self.input_ids, self.positions, self.slot_mapping, self.query_start_loc, self.seq_lens,
                       self.block_table, self.logits_indices, self.placeholder_dst, self.placeholder_src)
        # per staging half: which (state serial, block count) each block-table row holds
        self._row_keys = [[None] * max_reqs for _ in range(2)]
        self.half = 0

    def flip(self) -> None:
        """Switch to the other staging half (call once per step, before ``build``)."""
        self.half ^= 1
        for pair in self._pairs:
            pair.flip(self.half)

    def check_fits(self, num_tokens: int, num_reqs: int, max_blocks: int) -> None:
        if num_tokens > self.max_tokens or num_reqs > self.max_reqs or max_blocks > self.max_blocks_per_req:
            raise ValueError(
                f"step of {num_tokens} tokens, {num_reqs} requests, {max_blocks} blocks a request exceeds the "
                f"runner's buffers ({self.max_tokens}, {self.max_reqs}, {self.max_blocks_per_req}); raise "
                "max_num_batched_tokens / max_num_seqs / max_model_len together")

    def dummy_metadata(self, num_reqs: int, max_seq_len: int) -> CommonAttentionMetadata:
        """A uniform-decode batch of ``num_reqs`` one-token requests over block 0 (graph capture)."""
        self.input_ids.host[:num_reqs] = 0
        self.positions.host[:num_reqs] = 0
        self.slot_mapping.host[:num_reqs] = -1
        self.query_start_loc.host[: num_reqs + 1] = np.arange(num_reqs + 1)
        self.seq_lens.host[:num_reqs] = 1
        self.block_table.host[:num_reqs, :1] = 0
        self._row_keys = [[None] * self.max_reqs for _ in range(2)]
        for pair, n in ((self.input_ids, num_reqs), (self.positions, num_reqs), (self.slot_mapping, num_reqs),
                        (self.query_start_loc, num_reqs + 1), (self.seq_lens, num_reqs)):
            pair.upload(n)
        self.block_table.upload(num_reqs, 1)
        return self.metadata_view(num_reqs, num_reqs, num_reqs, 1, max_seq_len)

    def metadata_view(self, num_reqs, num_tokens, num_actual_tokens, max_query_len, max_seq_len):
        return CommonAttentionMetadata(
            query_start_loc=self.query_start_loc.device[: num_reqs + 1],
            query_start_loc_cpu=self.query_start_loc.host_tensor[: num_reqs + 1],
            seq_lens=self.seq_lens.device[:num_reqs],
            seq_lens_cpu=self.seq_lens.host_tensor[:num_reqs],
            block_table=self.block_table.device[:num_reqs],
            slot_mapping=self.slot_mapping.device[:num_tokens],
            num_reqs=num_reqs,
            num_actual_tokens=num_actual_tokens,
            max_query_len=max_query_len,
            max_seq_len=max_seq_len,
        )

    def build(self, states: list[RequestState], num_scheduled: list[int], padded_tokens: int,
              padded_reqs: int, static_shapes: bool = False) -> StepInputs:
        """Fill the buffers for one step; pads to ``padded_tokens``/``padded_reqs`` (≥ the real sizes).

        Request ``i`` contributes ``num_scheduled[i]`` tokens starting at its ``num_computed_tokens``.
        With ``static_shapes`` (``GraphRunner.static_shapes``) ``padded_reqs`` must be ``max_reqs``;
        the inputs are then the whole buffers and no metadata (see :meth:`_static_inputs`).
        """
        n = len(states)
        counts = np.asarray(num_scheduled, dtype=np.int64)
        computed_list = [s.num_computed_tokens for s in states]
        computed = np.asarray(computed_list, dtype=np.int64)
        qsl = self.query_start_loc.host
        qsl[0] = 0
        np.cumsum(counts, out=qsl[1: n + 1])
        total = int(qsl[n])
        seq_lens = computed + counts
        seq_list = seq_lens.tolist()
        max_blocks = max(len(s.block_ids) for s in states)
        self.check_fits(padded_tokens, padded_reqs, max_blocks)
        ids, table = self.input_ids.host, self.block_table.host
        row_keys = self._row_keys[self.half if len(self.block_table._hosts) > 1 else 0]
        dst: list[int] = []
        src: list[int] = []
        if total == n:  # one token a request (decode): one list, no slicing
            tokens = []
            for i, state in enumerate(states):
                known = state.token_ids
                c = computed_list[i]
                if c < len(known):
                    tokens.append(known[c])
                else:  # the token sampled last step, still on the device
                    tokens.append(0)
                    dst.append(i)
                    src.append(state.pending_index)
            ids[:n] = tokens
        else:
            starts = qsl[:n].tolist()
            for i, state in enumerate(states):
                known = state.token_ids
                c, end, at = computed_list[i], seq_list[i], starts[i]
                if end > len(known):
                    ids[at: at + len(known) - c] = known[c:]
                    ids[at + end - c - 1] = 0
                    dst.append(at + end - c - 1)
                    src.append(state.pending_index)
                else:
                    ids[at: at + end - c] = known[c:end]
        for i, state in enumerate(states):
            blocks = state.block_ids
            key = (state.serial, len(blocks))
            if row_keys[i] != key:
                table[i, : len(blocks)] = blocks
                row_keys[i] = key
        rows = np.repeat(np.arange(n), counts)
        positions = self.positions.host
        positions[:total] = np.arange(total, dtype=np.int64) - np.repeat(qsl[:n] - computed, counts)
        pos = positions[:total]
        slots = self.slot_mapping.host
        slots[:total] = table[rows, pos // self.block_size].astype(np.int64) * self.block_size + pos % self.block_size
        self.seq_lens.host[:n] = seq_lens
        # padding: requests without tokens, tokens without a slot
        ids[total:padded_tokens] = 0
        positions[total:padded_tokens] = 0
        slots[total:padded_tokens] = -1
        qsl[n + 1: padded_reqs + 1] = total
        self.seq_lens.host[n:padded_reqs] = 0
        sample_rows = [i for i, s in enumerate(states) if seq_list[i] == s.num_tokens]
        self.logits_indices.host[: len(sample_rows)] = qsl[1:][sample_rows] - 1
        placeholders = None
        if dst:
            self.placeholder_dst.host[: len(dst)] = dst
            self.placeholder_src.host[: len(src)] = src
            placeholders = (self.placeholder_dst.upload(len(dst)), self.placeholder_src.upload(len(src)))
        if static_shapes:
            return self._static_inputs(states, sample_rows, padded_reqs, bool(dst))
        input_ids = self.input_ids.upload(padded_tokens)
        positions_dev = self.positions.upload(padded_tokens)
        self.slot_mapping.upload(padded_tokens)
        self.query_start_loc.upload(padded_reqs + 1)
        self.seq_lens.upload(padded_reqs)
        self.block_table.upload(n, max_blocks)
        logits_indices = self.logits_indices.upload(len(sample_rows))
        metadata = self.metadata_view(padded_reqs, padded_tokens, total, int(counts.max()), int(seq_lens.max()))
        return StepInputs([s.req_id for s in states], input_ids, positions_dev, metadata, sample_rows,
                          logits_indices, placeholders)

    def _static_inputs(self, states, sample_rows: list[int], padded_reqs: int, pending: bool) -> StepInputs:
        """Upload every buffer whole and make no views: on XLA a whole-tensor copy is a plain
        transfer, while a slice update or a view made outside the compiled step would be a new
        program (or an extra output of the step's). The step slices the buffers itself."""
        if pending:
            raise ValueError("a step with tokens still pending on the device (async scheduling) cannot run "
                             "with static shapes; turn async scheduling off for this platform")
        if padded_reqs != self.max_reqs:
            raise ValueError(f"static shapes pad every step to the buffers' {self.max_reqs} requests, got {padded_reqs}")
        self.logits_indices.host[len(sample_rows):] = 0  # padding rows sample from token 0; discarded
        for pair in (self.input_ids, self.positions, self.slot_mapping, self.query_start_loc, self.seq_lens,
                     self.block_table, self.logits_indices):
            pair.device.copy_(pair.host_tensor, non_blocking=True)
        return StepInputs([s.req_id for s in states], self.input_ids.device, self.positions.device, None,
                          sample_rows, self.logits_indices.device)


def build_step_inputs(
    states: list[RequestState], num_scheduled: list[int], block_size: int, device: torch.device
) -> StepInputs:
    """One-off inputs in fresh buffers sized for this batch (tests and tools; the runner reuses its own)."""
    max_blocks = max(len(s.block_ids) for s in states)
    buffers = InputBuffers(sum(num_scheduled), len(states), max_blocks, block_size, device, pin_memory=False)
    return buffers.build(states, num_scheduled, sum(num_scheduled), len(states))
