"""The engine: requests in, one step at a time (schedule → execute → update), token deltas out."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from plinth.config import ADMISSION_RULES, ConfigError
from plinth.runner.request_state import needs_output_history
from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.outputs import EngineOutput, RunnerOutput, SchedulerOutput, SchedulerStats
from plinth.sched.request import FINISH_REASONS, Request, sibling_request_ids
from plinth.sched.scheduler import Scheduler

if TYPE_CHECKING:
    from plinth.config import EngineConfig
    from plinth.engine.executor import Executor
    from plinth.sampling_params import SamplingParams


class Engine:
    """Continuous batching over one executor. Not thread-safe: call it from one thread.

    With ``async_scheduling`` a step launches step N (``executor.execute_async``, which
    returns a handle at once), then applies step N-1's samples (``handle.result()`` and
    ``Scheduler.update``) while N runs: outputs lag one step, and the host's scheduling
    and bookkeeping overlap the device's work. It falls back to plain steps while any
    request needs its full output history when it samples
    (penalties, bad words, min_tokens, logits processors): see ``needs_output_history``.
    """

    def __init__(self, config: EngineConfig, executor: Executor, *, async_scheduling: bool = False) -> None:
        cache, sched = config.cache, config.scheduler
        self.config = config
        self.executor = executor
        self.max_model_len = _resolve_max_model_len(config, executor.num_kv_blocks)
        self.kv_cache = KVCacheManager(executor.num_kv_blocks, cache.block_size, cache.enable_prefix_caching)
        self.async_scheduling = async_scheduling
        self.scheduler = Scheduler(sched, self.kv_cache, self.max_model_len, self.async_scheduling)
        self._in_flight: tuple[SchedulerOutput, StepHandle] | None = None  # async: the step launched last
        self._history_ids: set[str] = set()  # unfinished requests that force plain steps

    def add_request(
        self, request_id: str, prompt_token_ids: Sequence[int], sampling_params: SamplingParams, *,
        eos_token_id: int | None = None, arrival_time: float | None = None, priority: int = 0,
        cache_salt: str | None = None, lora_id: int | None = None,
    ) -> list[str]:
        """Queue a request; returns the ids its outputs will carry.

        With ``sampling_params.n > 1`` the request fans out into ``n`` sibling requests
        (ids from ``sibling_request_ids``) that share the prompt's blocks through the
        prefix cache; each gets ``n=1`` and, if seeded, the seed ``seed + i``.
        Raises ValueError for a duplicate id, an empty prompt, a prompt longer than
        ``max_model_len`` or one needing more blocks than the whole KV cache.
        """
        n = sampling_params.n
        ids = sibling_request_ids(request_id, n)
        taken = [rid for rid in ids if rid in self.scheduler.requests]
        if taken:
            raise ValueError(f"request id(s) {taken} are already in use; request ids must be unique")
        arrival_time = time.monotonic() if arrival_time is None else arrival_time
        for i, rid in enumerate(ids):
            params = sampling_params
            if n > 1:
                seed = None if sampling_params.seed is None else sampling_params.seed + i
                params = dataclasses.replace(sampling_params, n=1, seed=seed)
            self.scheduler.add_request(Request(
                rid, prompt_token_ids, params, eos_token_id=eos_token_id, arrival_time=arrival_time,
                priority=priority, cache_salt=cache_salt, lora_id=lora_id))
            if self.async_scheduling and needs_output_history(params):
                self._history_ids.add(rid)
        return ids

    def abort_request(self, request_ids: Iterable[str]) -> list[EngineOutput]:
        """Abort running or waiting requests (by the ids ``add_request`` returned); frees their blocks.

        Returns a final output (finish_reason "abort") for each one that was unfinished.
        """
        live = [rid for rid in request_ids if rid in self.scheduler.requests]
        self.finish_requests(live, "abort")
        return [EngineOutput(rid, [], "abort") for rid in live]

    def finish_requests(self, request_ids: Iterable[str], reason: str) -> None:
        """End requests from outside the scheduler: the hook for the detokenizer's stop strings.

        ``reason`` is "stop", "length" or "abort". Blocks are freed at once and the runner
        is told in the next step. Unknown or finished ids are ignored.
        """
        if reason not in FINISH_REASONS:
            raise ValueError(f"finish reason must be one of {sorted(FINISH_REASONS)}, got {reason!r}")
        self.scheduler.finish_requests(request_ids, FINISH_REASONS[reason])

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished_requests() or self._in_flight is not None

    def stats(self) -> SchedulerStats:
        return self.scheduler.stats()

    def step(self) -> list[EngineOutput]:
        """Run one step; returns the outputs of the requests that produced tokens."""
        if self.async_scheduling:
            return self._step_async()
        scheduler_output = self.scheduler.schedule()
        runner_output = self.executor.execute(scheduler_output)
        return self.scheduler.update(scheduler_output, runner_output)

    def _step_async(self) -> list[EngineOutput]:
        """Launch step N, then apply step N-1's samples while N runs; returns N-1's outputs."""
        outputs: list[EngineOutput] = []
        if self._history_ids:
            self._history_ids &= self.scheduler.requests.keys()
            if self._history_ids:  # a request samples from its full history: no token may be pending
                outputs = self._finish_in_flight()
        scheduler_output = self.scheduler.schedule()
        if scheduler_output.num_scheduled_tokens:
            launch = getattr(self.executor, "execute_async", None)
            handle = launch(scheduler_output) if launch else _Done(self.executor.execute(scheduler_output))
        else:  # nothing to run, but the runner must still drop finished requests
            self.executor.execute(scheduler_output)
            handle = None
        outputs += self._finish_in_flight()
        if handle is not None:
            self._in_flight = (scheduler_output, handle)
        return outputs

    def _finish_in_flight(self) -> list[EngineOutput]:
        if self._in_flight is None:
            return []
        scheduler_output, handle = self._in_flight
        self._in_flight = None
        return self.scheduler.update(scheduler_output, handle.result())


class StepHandle(Protocol):
    """A launched step (``Executor.execute_async``): ``result()`` waits for its samples."""

    def result(self) -> RunnerOutput: ...


class _Done:
    """The handle of a step that already ran (an executor without ``execute_async``)."""

    __slots__ = ("output",)

    def __init__(self, output: RunnerOutput) -> None:
        self.output = output

    def result(self) -> RunnerOutput:
        return self.output


def _resolve_max_model_len(config: EngineConfig, num_kv_blocks: int) -> int:
    """The longest sequence (prompt + outputs); checks it against the cache and the token budget."""
    cache, sched = config.cache, config.scheduler
    if sched.max_num_seqs < 1 or sched.max_num_batched_tokens < 1:
        raise ConfigError(f"max_num_seqs ({sched.max_num_seqs}) and max_num_batched_tokens "
                          f"({sched.max_num_batched_tokens}) must be at least 1")
    if num_kv_blocks < 1:
        raise ConfigError(f"the executor has {num_kv_blocks} KV-cache blocks; give the cache more memory")
    capacity = num_kv_blocks * cache.block_size
    max_model_len = sched.max_model_len or capacity
    if max_model_len > capacity:
        raise ConfigError(
            f"max_model_len={max_model_len} tokens does not fit the KV cache ({num_kv_blocks} blocks of "
            f"{cache.block_size} = {capacity} tokens); lower max_model_len or give the cache more memory")
    if not sched.enable_chunked_prefill and sched.max_num_batched_tokens < max_model_len:
        raise ConfigError(
            f"without chunked prefill, max_num_batched_tokens ({sched.max_num_batched_tokens}) must be at "
            f"least max_model_len ({max_model_len}); raise it, lower max_model_len or enable chunked prefill")
    if sched.policy not in ("fcfs", "priority"):
        raise ConfigError(f"unknown scheduling policy {sched.policy!r}; use 'fcfs' or 'priority'")
    if sched.admission not in ADMISSION_RULES:
        raise ConfigError(f"unknown admission {sched.admission!r}; use {' or '.join(map(repr, ADMISSION_RULES))}")
    return max_model_len
