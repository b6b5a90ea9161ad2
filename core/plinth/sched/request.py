"""A request's state in the engine core, and the rules that stop it."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.sched.block_hash import extra_keys

if TYPE_CHECKING:
    from plinth.sampling_params import SamplingParams


class RequestStatus(enum.Enum):
    WAITING = "waiting"  # queued, holds no blocks
    RUNNING = "running"  # holds blocks, scheduled every step it fits
    PREEMPTED = "preempted"  # evicted to recompute; waits at the queue's front, holds no blocks
    FINISHED_STOPPED = "stop"  # EOS or a stop token id (or a stop string, via Engine.finish_requests)
    FINISHED_LENGTH = "length"  # max_tokens or the model's maximum length
    FINISHED_ABORTED = "abort"  # aborted by the caller


_NO_LIMIT = 1 << 62

FINISH_REASONS = {"stop": RequestStatus.FINISHED_STOPPED, "length": RequestStatus.FINISHED_LENGTH,
                  "abort": RequestStatus.FINISHED_ABORTED}


def sibling_request_ids(parent_id: str, n: int) -> list[str]:
    """The ids of the ``n`` sibling requests a request with ``SamplingParams.n == n`` fans out into.

    ``n == 1`` keeps the parent's id; otherwise the ids are ``f"{i}_{parent_id}"``.
    """
    return [parent_id] if n == 1 else [f"{i}_{parent_id}" for i in range(n)]


class Request:
    """One sequence being generated: its tokens, progress and stop parameters."""

    __slots__ = (
        "request_id", "prompt_token_ids", "sampling_params", "eos_token_id", "arrival_time",
        "priority", "cache_salt", "lora_id", "mm_hashes", "status", "output_token_ids",
        "all_token_ids", "num_computed_tokens", "num_cached_tokens", "block_hashes",
        "hash_extra_keys", "max_tokens", "stop_reason", "runs_to_length", "_stop_ids", "_min_tokens", "_eos",
    )

    def __init__(
        self, request_id: str, prompt_token_ids: Sequence[int], sampling_params: SamplingParams,
        *, eos_token_id: int | None = None, arrival_time: float | None = None, priority: int = 0,
        cache_salt: str | None = None, lora_id: int | None = None, mm_hashes: Sequence[str] = (),
    ) -> None:
        self.request_id = request_id
        self.prompt_token_ids = list(prompt_token_ids)
        self.sampling_params = sampling_params
        self.eos_token_id = eos_token_id  # None: the model has no EOS token
        self.arrival_time = time.monotonic() if arrival_time is None else arrival_time
        self.priority = priority  # lower value = more important (policy "priority")
        self.cache_salt = cache_salt  # keeps tenants' prefix caches apart
        self.lora_id = lora_id
        self.mm_hashes = tuple(mm_hashes)  # hashes of multimodal inputs, part of the cache key
        self.status = RequestStatus.WAITING
        self.output_token_ids: list[int] = []
        self.all_token_ids = list(self.prompt_token_ids)  # prompt + outputs
        self.num_computed_tokens = 0  # tokens whose KV is in the cache
        self.num_cached_tokens = -1  # prefix-cache hit at first scheduling; -1 until then
        self.block_hashes: list[bytes] = []  # chained hashes of full blocks, grown incrementally
        self.hash_extra_keys = extra_keys(lora_id, self.mm_hashes, cache_salt)
        # None = no cap of its own: the model's maximum length ends it
        self.max_tokens = _NO_LIMIT if sampling_params.max_tokens is None else sampling_params.max_tokens
        self.stop_reason: int | None = None  # the stop token id that ended the request
        self._eos = None if sampling_params.ignore_eos else eos_token_id
        self._stop_ids = frozenset(sampling_params.stop_token_ids or ())
        self._min_tokens = sampling_params.min_tokens
        # only max_tokens or the model's length can end it (no EOS, stop ids or stop strings)
        self.runs_to_length = self._eos is None and not self._stop_ids and not sampling_params.stop

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def is_finished(self) -> bool:
        return self.status.value in FINISH_REASONS

    @property
    def finish_reason(self) -> str | None:
        """"stop", "length", "abort", or None while the request is unfinished."""
        return self.status.value if self.is_finished else None

    def append_output_token(self, token_id: int, max_model_len: int) -> bool:
        """Append a sampled token and apply the stop rules; True when the request is finished.

        EOS (unless ``ignore_eos``) and ``stop_token_ids`` count only once ``min_tokens``
        tokens exist; then ``max_tokens`` and ``max_model_len`` cap the length.
        """
        self.output_token_ids.append(token_id)
        self.all_token_ids.append(token_id)
        if len(self.output_token_ids) >= self._min_tokens:
            if token_id == self._eos:
                self.status = RequestStatus.FINISHED_STOPPED
                return True
            if token_id in self._stop_ids:
                self.status = RequestStatus.FINISHED_STOPPED
                self.stop_reason = token_id
                return True
        if len(self.output_token_ids) >= self.max_tokens or len(self.all_token_ids) >= max_model_len:
            self.status = RequestStatus.FINISHED_LENGTH
            return True
        return False

    def __repr__(self) -> str:
        return (f"Request({self.request_id!r}, {self.status.name}, prompt={self.num_prompt_tokens}, "
                f"out={self.num_output_tokens}, computed={self.num_computed_tokens})")
