"""Admission by KV forecast: admit a request only if the running ones' projected growth still fits.

Greedy admission (vLLM's) takes a waiting request whenever its prompt fits in the free
blocks. When outputs are long, the running requests then outgrow the cache together and
the scheduler preempts by recompute, throwing away KV it must compute again. Here each
running request is projected forward to the end of the output it is expected to still
generate; a waiting request is admitted only if, at every future step, the blocks the
requests still alive need beyond what they hold now stay within the free blocks, counting
the blocks each finished request gives back. Preemption still guards correctness when the
forecast is wrong.

How much of its remaining allowance (``max_tokens``, ``max_model_len``) a request will use:
all of it when nothing but the length can stop it (``ignore_eos``, no stop ids or strings);
otherwise ``fraction`` of it, an average learned from the requests that finished, set back to
1 by a preemption (the forecast was too low). Allowances are capped at ``horizon`` tokens:
the forecast does not plan further ahead than that.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plinth.sched.kv_cache import KVCacheManager
    from plinth.sched.request import Request


class KVForecast:
    """The admission test and the learned share of the output allowance a request still uses."""

    def __init__(self, block_size: int, max_model_len: int, horizon: int = 4096,
                 initial_fraction: float = 0.7, weight: float = 0.1, min_fraction: float = 0.05) -> None:
        self.block_size = block_size
        self.max_model_len = max_model_len
        self.horizon = horizon
        self.fraction = initial_fraction
        self.weight = weight  # of each finished request in the running average
        self.min_fraction = min_fraction

    # ---- learning ------------------------------------------------------------

    def observe_finished(self, request: Request) -> None:
        """A request ended: move ``fraction`` toward the share of its allowance it used."""
        if request.runs_to_length:
            return  # its length was known; it says nothing about the others
        allowance = self._allowance(request.max_tokens, request.num_prompt_tokens)
        used = min(1.0, request.num_output_tokens / allowance)
        self.fraction = max(self.min_fraction, self.fraction + self.weight * (used - self.fraction))

    def observe_preemption(self) -> None:
        self.fraction = 1.0

    # ---- admission -----------------------------------------------------------

    def plan(self, running: list[Request], kv_cache: KVCacheManager) -> AdmissionPlan:
        """The running requests' projection; admit waiting ones through ``AdmissionPlan.admit``."""
        bs = self.block_size
        tables = kv_cache.block_tables
        steps_left = self.steps_left
        rows = [(steps_left(r), r.num_tokens, len(tables[r.request_id]),
                 max(r.num_cached_tokens, 0) // bs)  # prefix-cache hits stay cached after it ends
                for r in running]
        return AdmissionPlan(rows, kv_cache.num_free_blocks, bs)

    def steps_left(self, request: Request) -> int:
        """Output tokens the forecast expects ``request`` still to generate."""
        left = min(request.max_tokens - request.num_output_tokens, self.max_model_len - request.num_tokens,
                   self.horizon)
        if left <= 0:
            return 0
        return left if request.runs_to_length else math.ceil(self.fraction * left)

    def _allowance(self, max_tokens: int, num_prompt_tokens: int) -> int:
        return max(1, min(max_tokens, self.max_model_len - num_prompt_tokens, self.horizon))


class AdmissionPlan:
    """One ``schedule()``'s projection of the running requests; grows with each admission.

    A row is ``(steps, tokens, held, kept)``: output tokens still expected, tokens it will
    hold (prompt included, even if part is not computed yet), blocks held now, blocks that
    stay cached after it ends. At ``t`` steps ahead a live row needs
    ``ceil((tokens + t) / block_size) - held`` more blocks; an ended row gives ``held - kept``
    back. The need peaks just before a row ends, so only those ``t`` are checked.
    """

    def __init__(self, rows: list[tuple[int, int, int, int]], free_blocks: int, block_size: int) -> None:
        self.rows = rows
        self.free_blocks = free_blocks
        self.block_size = block_size
        self._worst = sum(map(self._final_need, rows))  # the need if nothing ever ended

    def _final_need(self, row: tuple[int, int, int, int]) -> int:
        steps, tokens, held, _ = row
        return -(-(tokens + steps) // self.block_size) - held

    def admit(self, steps: int, tokens: int, held: int = 0, kept: int = 0) -> bool:
        """Whether a request with this row fits the projection; if so, it joins the plan."""
        row = (steps, tokens, held, kept)
        worst = self._worst + self._final_need(row)
        if worst > self.free_blocks and self._peak_need(self.rows + [row]) > self.free_blocks:
            return False
        self.rows.append(row)
        self._worst = worst
        return True

    def _peak_need(self, rows: list[tuple[int, int, int, int]]) -> float:
        bs = self.block_size
        rows = sorted(rows)
        live_tokens = sum(r[1] for r in rows)
        live_held = sum(r[2] for r in rows)
        live = len(rows)
        returned = 0  # blocks given back by rows already ended
        peak = float("-inf")
        for steps, tokens, held, kept in rows:
            # every live row at its worst rounding: ceil(x / bs) <= x / bs + 1
            need = (live_tokens + live * steps) / bs + live - live_held - returned
            peak = max(peak, need)
            live_tokens -= tokens
            live_held -= held
            live -= 1
            returned += held - kept
        return peak
