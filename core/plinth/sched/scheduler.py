"""The continuous-batching scheduler: one token budget for prefill, decode and chunked prefill."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.kv_forecast import KVForecast
from plinth.sched.outputs import (
    EMPTY_BLOCK_IDS,
    CachedRequestData,
    EngineOutput,
    NewRequestData,
    RunnerOutput,
    SchedulerOutput,
    SchedulerStats,
)
from plinth.sched.request import Request, RequestStatus
from plinth.sched.request_queue import make_waiting_queue

if TYPE_CHECKING:
    from plinth.config import SchedulerConfig

_RUNNING = RequestStatus.RUNNING


class Scheduler:
    """Decides each step which requests run with how many tokens, and applies what they produced.

    ``schedule()`` serves running requests first (oldest first), then admits waiting
    ones, all under ``max_num_batched_tokens`` tokens and ``max_num_seqs`` requests.
    Admission ``"forecast"`` (the default) also asks ``KVForecast`` whether the running
    requests' projected growth leaves room; ``"greedy"`` (vLLM's) admits whenever the
    prompt fits the free blocks.
    When a running request needs a block and none is free, another request is
    preempted by recompute (its blocks are freed; it re-enters the waiting queue).
    Victim: the newest running request (``fcfs``), or the least important one,
    largest ``priority`` then latest arrival (``priority``).

    With ``async_scheduling`` the engine calls ``schedule()`` for step N+1 before
    ``update()`` for step N, while step N runs on the device. Computed tokens then
    advance at schedule time, and a request whose step samples holds one *pending*
    output token (a placeholder: the runner feeds the sampled id from the device) until
    ``update()`` appends it. A request that finishes in ``update()`` may already be
    scheduled in the step in flight; that step's token for it is discarded. With prefix
    caching, a block completed by a placeholder is hashed a step later, once its token is known.
    """

    def __init__(self, config: SchedulerConfig, kv_cache: KVCacheManager, max_model_len: int,
                 async_scheduling: bool = False) -> None:
        self.async_scheduling = async_scheduling
        self._pending: dict[str, int] = {}  # request id -> sampled tokens not yet update()d (async only)
        self.max_num_seqs = config.max_num_seqs
        self.max_num_batched_tokens = config.max_num_batched_tokens
        self.enable_chunked_prefill = config.enable_chunked_prefill
        self.policy = config.policy
        self.max_model_len = max_model_len
        self.kv_cache = kv_cache
        self.requests: dict[str, Request] = {}  # every unfinished request
        self.waiting = make_waiting_queue(config.policy)
        self.running: list[Request] = []  # in admission order
        self._finished_req_ids: set[str] = set()  # ended since the last schedule(), runner still holds them
        self.num_preemptions = 0
        self.forecast = (KVForecast(kv_cache.block_size, max_model_len)
                         if config.admission == "forecast" else None)

    # ---- requests in and out -------------------------------------------------

    def add_request(self, request: Request) -> None:
        """Queue a request; raises ValueError if it can never run."""
        rid = request.request_id
        if rid in self.requests:
            raise ValueError(f"request id {rid!r} is already in use; request ids must be unique")
        if request.num_prompt_tokens == 0:
            raise ValueError(f"request {rid!r} has an empty prompt; give at least one token")
        if request.num_prompt_tokens > self.max_model_len:
            raise ValueError(
                f"request {rid!r}: the prompt has {request.num_prompt_tokens} tokens, more than "
                f"max_model_len={self.max_model_len}; shorten the prompt or raise max_model_len")
        kv = self.kv_cache
        need = -(-request.num_prompt_tokens // kv.block_size)
        if need > kv.num_blocks:
            raise ValueError(
                f"request {rid!r}: the prompt needs {need} KV-cache blocks of {kv.block_size} tokens "
                f"but the whole pool has {kv.num_blocks}; shorten the prompt or give the cache more memory")
        self.requests[rid] = request
        self.waiting.push(request)

    def finish_requests(self, request_ids, status: RequestStatus) -> None:
        """End requests (abort, or a stop string found by the detokenizer); frees their blocks.

        Unknown or already finished ids are ignored.
        """
        if status.value not in ("stop", "length", "abort"):
            raise ValueError(f"{status} is not a finished status")
        for rid in request_ids:
            request = self.requests.pop(rid, None)
            if request is None:
                continue
            self._pending.pop(rid, None)
            if status is not RequestStatus.FINISHED_ABORTED and self.forecast is not None:
                self.forecast.observe_finished(request)
            if request.status is _RUNNING:
                self.running.remove(request)
                self.kv_cache.free(request)
                self._finished_req_ids.add(rid)
            else:
                self.waiting.remove(request)
            request.status = status

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def stats(self) -> SchedulerStats:
        kv = self.kv_cache
        return SchedulerStats(len(self.running), len(self.waiting), kv.usage,
                              kv.prefix_cache_queries, kv.prefix_cache_hits, self.num_preemptions)

    # ---- schedule ------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        """Plan one step. Waiting requests are not admitted in a step that had to preempt."""
        num_scheduled: dict[str, int] = {}
        cached_reqs: dict[str, CachedRequestData] = {}
        preempted: list[str] = []
        budget = self._schedule_running(num_scheduled, cached_reqs, preempted)
        new_reqs = [] if preempted else self._schedule_waiting(budget, num_scheduled)
        finished, self._finished_req_ids = self._finished_req_ids, set()
        if self.async_scheduling:
            self._advance_at_schedule(num_scheduled)
        return SchedulerOutput(
            scheduled_new_reqs=tuple(new_reqs),
            scheduled_cached_reqs=tuple(cached_reqs.values()),
            num_scheduled_tokens=num_scheduled,
            total_num_scheduled_tokens=sum(num_scheduled.values()),
            finished_req_ids=frozenset(finished),
            preempted_req_ids=frozenset(preempted),
        )

    def _advance_at_schedule(self, num_scheduled: dict[str, int]) -> None:
        """Async: count the scheduled tokens as computed now; a step that samples leaves a pending token."""
        requests, pending = self.requests, self._pending
        for rid, n in num_scheduled.items():
            request = requests[rid]
            request.num_computed_tokens += n
            owed = pending.get(rid, 0)
            if request.num_computed_tokens == len(request.all_token_ids) + owed:
                pending[rid] = owed + 1

    def _schedule_running(self, num_scheduled: dict[str, int],
                          cached_reqs: dict[str, CachedRequestData], preempted: list[str]) -> int:
        """Schedule running requests in order, preempting when blocks run out; returns the budget left."""
        budget = self.max_num_batched_tokens
        kv = self.kv_cache
        running = self.running
        i = 0
        while i < len(running) and budget > 0:
            request = running[i]
            num_new = min(len(request.all_token_ids) + self._pending.get(request.request_id, 0)
                          - request.num_computed_tokens, budget)
            while not kv.can_allocate(request, num_new):
                victim_index, freed_tokens = self._preempt(num_scheduled, cached_reqs, preempted)
                budget += freed_tokens
                if victim_index < i:
                    i -= 1
                elif victim_index == i:  # the request itself was the victim
                    break
            if request.status is not _RUNNING:
                continue
            new_block_ids = kv.allocate(request, num_new)
            rid = request.request_id
            num_scheduled[rid] = num_new
            cached_reqs[rid] = CachedRequestData(
                rid, tuple(new_block_ids) if new_block_ids else EMPTY_BLOCK_IDS, request.num_computed_tokens)
            budget -= num_new
            i += 1
        return budget

    def _preempt(self, num_scheduled: dict[str, int], cached_reqs: dict[str, CachedRequestData],
                 preempted: list[str]) -> tuple[int, int]:
        """Preempt the victim by recompute; returns its index in ``running`` and the tokens it gave back."""
        if self.policy == "priority":
            victim = max(self.running, key=lambda r: (r.priority, r.arrival_time))
            index = self.running.index(victim)
            del self.running[index]
        else:
            index = len(self.running) - 1
            victim = self.running.pop()
        rid = victim.request_id
        cached_reqs.pop(rid, None)  # a victim already scheduled this step is unscheduled
        self.kv_cache.free(victim)  # before resetting num_computed_tokens: see KVCacheManager.free
        victim.status = RequestStatus.PREEMPTED
        victim.num_computed_tokens = 0
        self.waiting.push_preempted(victim)
        preempted.append(rid)
        self.num_preemptions += 1
        if self.forecast is not None:
            self.forecast.observe_preemption()
        return index, num_scheduled.pop(rid, 0)

    def _schedule_waiting(self, budget: int, num_scheduled: dict[str, int]) -> list[NewRequestData]:
        """Admit waiting requests in queue order while budget, seats and blocks last."""
        kv = self.kv_cache
        new_reqs = []
        plan = None  # the KV forecast's projection, made for the first candidate
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            request = self.waiting.peek()
            cached_prefix = kv.find_cached_prefix(request)
            num_computed = len(cached_prefix) * kv.block_size
            num_new = request.num_tokens - num_computed
            if num_new > budget:
                if not self.enable_chunked_prefill:
                    break
                num_new = budget
            if not kv.can_allocate(request, num_new, cached_prefix):
                break
            if self.forecast is not None and self.running:  # alone, a request always runs
                if plan is None:
                    plan = self.forecast.plan(self.running, kv)
                shared = sum(1 for block in cached_prefix if block.ref_cnt > 0)
                if not plan.admit(self.forecast.steps_left(request), request.num_tokens, shared, shared):
                    break
            self.waiting.pop()
            kv.allocate(request, num_new, cached_prefix)
            request.status = _RUNNING
            request.num_computed_tokens = num_computed
            if request.num_cached_tokens < 0:
                request.num_cached_tokens = num_computed
            self.running.append(request)
            rid = request.request_id
            num_scheduled[rid] = num_new
            budget -= num_new
            new_reqs.append(NewRequestData(
                rid, tuple(request.prompt_token_ids), tuple(request.output_token_ids),
                request.sampling_params, tuple(kv.block_ids(rid)), num_computed, request.lora_id))
        return new_reqs

    # ---- update --------------------------------------------------------------

    def update(self, scheduler_output: SchedulerOutput, runner_output: RunnerOutput) -> list[EngineOutput]:
        """Advance computed tokens, append sampled tokens, apply stop rules, free finished requests."""
        num_scheduled = scheduler_output.num_scheduled_tokens
        requests = self.requests
        max_model_len = self.max_model_len
        logprobs = runner_output.logprobs
        prompt_logprobs = runner_output.prompt_logprobs
        outputs = []
        any_finished = False
        advance = not self.async_scheduling  # async: computed tokens advanced at schedule time
        pending = self._pending
        for i, rid in enumerate(runner_output.req_ids):
            request = requests.get(rid)
            if request is None:  # ended between schedule() and update()
                continue
            sampled = runner_output.sampled_token_ids[i]
            if advance:
                request.num_computed_tokens += num_scheduled[rid]
            elif sampled:
                owed = pending.pop(rid) - 1
                if owed:
                    pending[rid] = owed
            if not sampled:  # a partial-prefill chunk
                continue
            preempted = request.status is not _RUNNING  # async: preempted while this token was in flight
            if len(sampled) == 1:
                new_token_ids = sampled
                finished = request.append_output_token(sampled[0], max_model_len)
            else:
                new_token_ids, finished = _append_tokens(request, sampled, max_model_len)
            if finished:
                any_finished = True
                if preempted:
                    self.waiting.remove(request)
                self._release(request, runner_holds_it=not preempted)
            outputs.append(EngineOutput(
                rid, new_token_ids, request.finish_reason if finished else None, request.stop_reason,
                None if logprobs is None else logprobs[i],
                None if prompt_logprobs is None else prompt_logprobs.get(rid),
                request.num_cached_tokens))
        if any_finished:
            self.running = [r for r in self.running if r.status is _RUNNING]
        return outputs

    def _release(self, request: Request, runner_holds_it: bool = True) -> None:
        """Forget a finished request; the runner is told to drop it unless a preemption already did."""
        if self.forecast is not None:
            self.forecast.observe_finished(request)
        self._pending.pop(request.request_id, None)
        del self.requests[request.request_id]
        self.kv_cache.free(request)
        if runner_holds_it:
            self._finished_req_ids.add(request.request_id)


def _append_tokens(request: Request, token_ids: list[int], max_model_len: int) -> tuple[list[int], bool]:
    """Append several tokens (speculative decoding); stop at the first that finishes the request."""
    for k, token_id in enumerate(token_ids):
        if request.append_output_token(token_id, max_model_len):
            return token_ids[:k + 1], True
    return token_ids, False
