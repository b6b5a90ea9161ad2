"""The profile run: dummy steps at the shapes the scheduler can produce, before the KV cache exists.

Platforms that declare ``Feature.PROFILE_RUN`` get it (their kernels compile on first use,
e.g. Triton JIT, or their memory budget must count activations). It runs, in order:

- a prefill step of ``max_num_batched_tokens`` tokens (the largest activations),
- a step of short queries (chunked-prefill / mixed batches pick other kernel tiles),
- both of those again with one query of a single token (a mixed step's decode row, which
  backends may serve apart),
- uniform-decode steps at every power of two up to ``max_num_seqs`` (decode variants,
  e.g. split-KV plans, that graph capture may not cover in eager mode),
- logits for ``max_num_seqs`` rows and the sampler on them, once on its fused path and once
  through top-k/top-p (the memory-heaviest path).

Every token has slot -1 (nothing is written to the cache) and every block-table entry is 0,
so a zeroed one-block cache per layer serves all of it; it is dropped afterwards, and the device RNG
is re-seeded with the engine's seed. Nothing is returned to the device: the caching
allocator keeps the peak, so the free-memory KV budget measured next leaves room for it.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from plinth.config import ConfigError
from plinth.model.forward_context import ForwardContext, forward_context
from plinth.runner.kv_cache_sizing import allocate_kv_caches
from plinth.runner.sampling_metadata import SamplingMetadata
from plinth.runner.step_inputs import InputBuffers
from plinth.sampling_params import SamplingParams

if TYPE_CHECKING:
    from plinth.runner.model_runner import ModelRunner


def warm_up_shapes(max_tokens: int, max_reqs: int, max_model_len: int) -> list[list[int]]:
    """Query lengths of each dummy step: prefill at the token budget, short queries, decode ladder."""
    longest = min(max_tokens, max_model_len)
    prefill = [longest] * max(1, min(max_reqs, max_tokens // longest))
    short_len = min(16, longest)
    short = [short_len] * max(1, min(max_reqs, max_tokens // short_len))
    decode = [[1] * n for n in _powers_of_two(min(max_reqs, max_tokens))]
    steps = [prefill] + ([short] if short_len > 1 else [])
    mixed = [_with_decode_row(lens) for lens in steps if max_reqs > 1]
    return steps + mixed + decode


def _with_decode_row(query_lens: list[int]) -> list[int]:
    """``query_lens`` with its last query one token long (split off the query when it stands alone)."""
    return [*query_lens[:-1], 1] if len(query_lens) > 1 else [query_lens[0] - 1, 1]


def _powers_of_two(limit: int) -> list[int]:
    sizes, n = [], 1
    while n < limit:
        sizes.append(n)
        n *= 2
    return sizes + [limit]


def profile_run(runner: ModelRunner, specs, kv_dtype: torch.dtype) -> float:
    """Run the dummy steps (see the module docstring); returns the seconds it took."""
    start = time.perf_counter()
    sched, block_size = runner.config.scheduler, runner.block_size
    max_model_len = runner.model_config.max_model_len
    max_tokens, max_reqs = sched.max_num_batched_tokens, sched.max_num_seqs
    buffers = InputBuffers(max_tokens, max_reqs, math.ceil(max_model_len / block_size) + 1, block_size,
                           runner.device, pin_memory=False)
    kv_caches = [c.zero_() for c in allocate_kv_caches(runner.backend, specs, 1, kv_dtype, runner.device)]
    try:
        _run(runner, buffers, kv_caches, max_tokens, max_reqs, max_model_len)
    except torch.OutOfMemoryError as exc:
        raise ConfigError(
            f"the profile run (a {max_tokens}-token step, {max_reqs} sampling rows) ran out of device memory "
            f"before the KV cache was allocated: lower max_num_batched_tokens or max_num_seqs, or use a "
            f"smaller model or dtype ({exc})") from None
    runner.platform.device.synchronize()
    del kv_caches
    runner.platform.device.seed(runner.config.seed)  # the dummy sampling drew from the device RNG
    return time.perf_counter() - start


def _run(runner: ModelRunner, buffers: InputBuffers, kv_caches, max_tokens: int, max_reqs: int,
         max_model_len: int) -> None:
    with runner.platform.inference_mode():
        for query_lens in warm_up_shapes(max_tokens, max_reqs, max_model_len):
            metadata = _dummy_step(buffers, query_lens)
            with forward_context(ForwardContext(runner.backend.build_metadata(metadata), kv_caches)):
                hidden = runner.model(buffers.input_ids.device[: metadata.num_actual_tokens],
                                      buffers.positions.device[: metadata.num_actual_tokens])
        rows = hidden[:1].expand(min(max_reqs, max_tokens), -1).contiguous()
        logits = runner.model.compute_logits(rows)
        for params in (SamplingParams(temperature=0.6), SamplingParams(temperature=0.6, top_k=50, top_p=0.9)):
            runner.sampler(logits, _dummy_sampling(params, len(rows), runner))
        del hidden, rows, logits


def _dummy_step(buffers: InputBuffers, query_lens: list[int]):
    """Fill ``buffers`` with requests of ``query_lens`` new tokens each (no context, no cache writes)."""
    n, total = len(query_lens), sum(query_lens)
    counts = np.asarray(query_lens, dtype=np.int64)
    qsl = buffers.query_start_loc.host
    qsl[0] = 0
    np.cumsum(counts, out=qsl[1: n + 1])
    buffers.input_ids.host[:total] = 0
    buffers.positions.host[:total] = np.arange(total) - np.repeat(qsl[:n], counts)
    buffers.slot_mapping.host[:total] = -1
    buffers.seq_lens.host[:n] = counts
    buffers.block_table.host[:n] = 0
    for pair, rows in ((buffers.input_ids, total), (buffers.positions, total), (buffers.slot_mapping, total),
                       (buffers.query_start_loc, n + 1), (buffers.seq_lens, n), (buffers.block_table, n)):
        pair.upload(rows)
    longest = int(counts.max())
    return buffers.metadata_view(n, total, total, longest, longest)


def _dummy_sampling(params: SamplingParams, rows: int, runner: ModelRunner) -> SamplingMetadata:
    return SamplingMetadata.build(
        [params] * rows, [[0]] * rows, [[] for _ in range(rows)], vocab_size=runner.vocab_size,
        device=runner.device, eos_token_ids=runner.eos_token_ids, generators=[None] * rows,
        bad_words_token_ids=[None] * rows, pin_memory=False)
