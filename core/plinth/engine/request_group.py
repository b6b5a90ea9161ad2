"""The user-level view of one request: its n completions, their text and logprobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plinth.engine.detokenizer import IncrementalDetokenizer
from plinth.outputs import CompletionOutput, Logprob, RequestOutput
from plinth.sampling_params import RequestOutputKind

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from plinth.engine.outputs import EngineOutput
    from plinth.sampling_params import SamplingParams


@dataclass
class Completion:
    index: int
    detokenizer: IncrementalDetokenizer | None  # None without a tokenizer: token ids only
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[dict[int, Logprob]] | None = None
    cumulative_logprob: float | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    sent_tokens: int = 0  # tokens already returned as deltas


class RequestGroup:
    """Folds engine outputs of one request's sibling sequences into RequestOutputs."""

    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                 params: SamplingParams, tokenizer: PreTrainedTokenizerBase | None) -> None:
        self.request_id, self.prompt, self.prompt_token_ids = request_id, prompt, prompt_token_ids
        self.params, self.tokenizer = params, tokenizer
        self.completions = [
            Completion(i, None if tokenizer is None else IncrementalDetokenizer(tokenizer, prompt_token_ids, params))
            for i in range(params.n)]
        self.num_finished = 0
        if params.logprobs is not None:
            for c in self.completions:
                c.logprobs, c.cumulative_logprob = [], 0.0
        self.num_cached_tokens = 0
        self.prompt_logprobs: list[dict[int, Logprob] | None] | None = None

    @property
    def finished(self) -> bool:
        return self.num_finished == len(self.completions)

    def apply(self, index: int, out: EngineOutput) -> str | None:
        """Add one engine output to completion ``index``; returns a matched stop string."""
        c = self.completions[index]
        self.num_cached_tokens = max(self.num_cached_tokens, out.num_cached_tokens)
        if out.prompt_logprobs is not None and self.prompt_logprobs is None:
            self.prompt_logprobs = self._prompt_logprob_dicts(out.prompt_logprobs)
        c.token_ids.extend(out.new_token_ids)
        if c.logprobs is not None and out.logprobs is not None and out.new_token_ids:
            self._add_logprobs(c, out.logprobs)
        matched = None
        if c.detokenizer is not None and out.new_token_ids:
            matched = c.detokenizer.update(out.new_token_ids, stop_terminated=out.finish_reason == "stop")
        if matched is not None:
            self._finish(c, "stop", matched)
        elif out.finish_reason is not None:
            self._finish(c, out.finish_reason, out.stop_reason)
        return matched

    def _finish(self, c: Completion, reason: str, stop_reason) -> None:
        if c.finish_reason is None:
            self.num_finished += 1
        c.finish_reason, c.stop_reason = reason, stop_reason

    def abort(self) -> None:
        for c in self.completions:
            if c.finish_reason is None:
                self._finish(c, "abort", None)

    def _add_logprobs(self, c: Completion, row) -> None:
        c.logprobs.append(self._logprob_dict(row, self.params.logprobs))
        c.cumulative_logprob += row[1][0]

    def _logprob_dict(self, row, k: int) -> dict[int, Logprob]:
        """``(token_ids, logprobs, rank)`` with the chosen token first, then the top-k."""
        token_ids, logprobs, rank = row
        entry = {token_ids[0]: Logprob(logprobs[0], rank, self._text(token_ids[0]))}
        for j in range(1, k + 1):
            entry.setdefault(token_ids[j], Logprob(logprobs[j], j, self._text(token_ids[j])))
        return entry

    def _text(self, token_id: int) -> str | None:
        return None if self.tokenizer is None else self.tokenizer.decode([token_id])

    def _prompt_logprob_dicts(self, rows) -> list[dict[int, Logprob] | None]:
        k = self.params.prompt_logprobs
        return [None if row is None else self._logprob_dict(row, k) for row in rows]

    def output(self) -> RequestOutput | None:
        """The RequestOutput to emit now, honouring the params' output kind (None: nothing yet)."""
        kind = self.params.output_kind
        finished = self.finished
        if kind == RequestOutputKind.FINAL_ONLY and not finished:
            return None
        delta = kind == RequestOutputKind.DELTA
        outputs = []
        for c in self.completions:
            done = c.finish_reason is not None
            text = "" if c.detokenizer is None else c.detokenizer.get_next_output_text(done, delta)
            start = c.sent_tokens if delta else 0
            c.sent_tokens = len(c.token_ids)
            logprobs = c.logprobs[start:] if c.logprobs is not None else None
            outputs.append(CompletionOutput(c.index, text, c.token_ids[start:], c.cumulative_logprob,
                                            logprobs, c.finish_reason, c.stop_reason))
        return RequestOutput(self.request_id, self.prompt, self.prompt_token_ids, outputs, finished,
                             self.num_cached_tokens, self.prompt_logprobs)
