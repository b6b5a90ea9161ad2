"""Turning a SchedulerOutput and the runner's request states into flat model inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from plinth.platform.attention import CommonAttentionMetadata
from plinth.runner.request_state import RequestState


@dataclass(frozen=True)
class StepInputs:
    """One step's flat batch, on the device, plus what sampling needs."""

    req_ids: list[str]  # batch order
    input_ids: torch.Tensor  # int64 [num_tokens]
    positions: torch.Tensor  # int64 [num_tokens]
    metadata: CommonAttentionMetadata
    sample_rows: list[int]  # batch rows (indexes into req_ids) that sample a token this step
    logits_indices: torch.Tensor  # int64 [len(sample_rows)]: flat token index of each sampling row


def build_step_inputs(
    states: list[RequestState], num_scheduled: list[int], block_size: int, device: torch.device
) -> StepInputs:
    """Flat ``input_ids``/``positions``/``slot_mapping`` and the attention metadata.

    Request ``i`` contributes ``num_scheduled[i]`` tokens starting at its
    ``num_computed_tokens``. Vectorised with numpy except for one pass over requests.
    """
    counts = np.asarray(num_scheduled, dtype=np.int64)
    computed = np.fromiter((s.num_computed_tokens for s in states), dtype=np.int64, count=len(states))
    query_start = np.zeros(len(states) + 1, dtype=np.int64)
    np.cumsum(counts, out=query_start[1:])
    total = int(query_start[-1])
    seq_lens = computed + counts
    input_ids = np.empty(total, dtype=np.int64)
    for i, state in enumerate(states):
        input_ids[query_start[i]:query_start[i + 1]] = state.token_ids[computed[i]:seq_lens[i]]
    rows = np.repeat(np.arange(len(states)), counts)
    positions = np.arange(total, dtype=np.int64) - np.repeat(query_start[:-1] - computed, counts)
    max_blocks = max(len(s.block_ids) for s in states)
    block_table = np.zeros((len(states), max_blocks), dtype=np.int32)
    for i, state in enumerate(states):
        block_table[i, : len(state.block_ids)] = state.block_ids
    slot_mapping = block_table[rows, positions // block_size].astype(np.int64) * block_size + positions % block_size
    sample_rows = [i for i, s in enumerate(states) if seq_lens[i] == s.num_tokens]
    logits_indices = query_start[1:][sample_rows] - 1
    qsl_cpu = torch.from_numpy(query_start.astype(np.int32))
    seq_cpu = torch.from_numpy(seq_lens.astype(np.int32))
    metadata = CommonAttentionMetadata(
        query_start_loc=qsl_cpu.to(device, non_blocking=True),
        query_start_loc_cpu=qsl_cpu,
        seq_lens=seq_cpu.to(device, non_blocking=True),
        seq_lens_cpu=seq_cpu,
        block_table=torch.from_numpy(block_table).to(device, non_blocking=True),
        slot_mapping=torch.from_numpy(slot_mapping).to(device, non_blocking=True),
        num_reqs=len(states),
        num_actual_tokens=total,
        max_query_len=int(counts.max()),
        max_seq_len=int(seq_lens.max()),
    )
    return StepInputs(
        req_ids=[s.req_id for s in states],
        input_ids=torch.from_numpy(input_ids).to(device, non_blocking=True),
        positions=torch.from_numpy(positions).to(device, non_blocking=True),
        metadata=metadata,
        sample_rows=sample_rows,
        logits_indices=torch.from_numpy(np.ascontiguousarray(logits_indices)).to(device, non_blocking=True),
    )
