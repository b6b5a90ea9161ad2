"""The seam between scheduling and execution: what the scheduler sends, what the runner returns.

The runner keeps its own per-request state. Each step it must, in order:
drop ``finished_req_ids`` and ``preempted_req_ids``; add ``scheduled_new_reqs``;
apply ``scheduled_cached_reqs`` diffs; then compute ``num_scheduled_tokens[req_id]``
tokens per request, starting at its ``num_computed_tokens``. A request samples one
token only in the step where ``num_computed_tokens + num_scheduled_tokens`` reaches
its full token count (prompt + outputs); a partial-prefill chunk samples nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plinth.sampling_params import SamplingParams


@dataclass(frozen=True, slots=True)
class NewRequestData:
    """A request the runner has no state for: first scheduled, or resumed after preemption."""

    req_id: str  # the request id (a sibling's own id when n > 1)
    prompt_token_ids: tuple[int, ...]  # the whole prompt
    output_token_ids: tuple[int, ...]  # tokens generated before a preemption; () when first scheduled
    sampling_params: SamplingParams  # how to sample (n == 1 for siblings)
    block_ids: tuple[int, ...]  # the whole block table, in order
    num_computed_tokens: int  # tokens whose KV is already cached (the prefix-cache hit); a multiple of the block size
    lora_id: int | None  # the LoRA adapter, None for the base model


@dataclass(frozen=True, slots=True)
class CachedRequestData:
    """A request the runner already holds, as a diff since its last step."""

    req_id: str  # the request id
    new_block_ids: tuple[int, ...]  # blocks appended to its block table this step; () usually
    num_computed_tokens: int  # tokens computed before this step (where this step's tokens start)


@dataclass(frozen=True, slots=True)
class SchedulerOutput:
    """One step's plan: which requests run, with how many tokens each."""

    scheduled_new_reqs: tuple[NewRequestData, ...]  # new or resumed requests, with their whole state
    scheduled_cached_reqs: tuple[CachedRequestData, ...]  # running requests, as diffs
    num_scheduled_tokens: dict[str, int]  # request id → tokens to compute this step (≥ 1)
    total_num_scheduled_tokens: int  # sum of num_scheduled_tokens; ≤ max_num_batched_tokens
    finished_req_ids: frozenset[str]  # finished or aborted since the last step: drop their state
    preempted_req_ids: frozenset[str]  # preempted this step: drop their state (they come back as new)


@dataclass(frozen=True, slots=True)
class RunnerOutput:
    """What the runner produced for one SchedulerOutput."""

    req_ids: list[str]  # every scheduled request id, in the runner's batch order
    sampled_token_ids: list[list[int]]  # per request (aligned with req_ids); [] for a partial-prefill chunk
    logprobs: object | None = None  # sampler-defined; when given, indexable by position in req_ids
    prompt_logprobs: dict[str, object] | None = None  # request id → prompt logprobs (sampler-defined)


@dataclass(frozen=True, slots=True)
class EngineOutput:
    """What one step produced for one request: new tokens and, at the end, why it finished."""

    request_id: str  # the request id (a sibling's own id when n > 1)
    new_token_ids: list[int]  # tokens appended this step (after stop-rule truncation)
    finish_reason: str | None  # None while running; "stop", "length" or "abort"
    stop_reason: int | None = None  # the stop token id that ended it; None for EOS and the rest
    logprobs: object | None = None  # passed through from RunnerOutput.logprobs
    prompt_logprobs: object | None = None  # passed through from RunnerOutput.prompt_logprobs
    num_cached_tokens: int = 0  # prompt tokens served by the prefix cache (usage stats)


EMPTY_BLOCK_IDS: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """A snapshot for metrics (Prometheus gauges and counters)."""

    num_running_reqs: int  # requests holding blocks
    num_waiting_reqs: int  # queued or preempted requests
    kv_cache_usage: float  # fraction of KV blocks held by requests, 0..1
    prefix_cache_queries: int  # prompt tokens looked up in the prefix cache, cumulative
    prefix_cache_hits: int  # of those, tokens found, cumulative
    num_preemptions: int  # preemptions by recompute, cumulative
