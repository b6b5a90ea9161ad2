"""What `LLM.generate` and the server hand to users (vLLM-compatible shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Logprob:
    logprob: float  # natural log of the probability under the raw model distribution
    rank: int  # 1 = the most likely token
    decoded_token: str | None = None  # the token's text


SampleLogprobs = list[dict[int, Logprob]]
"""Per generated token: token id -> Logprob (the sampled token and the top-k)."""


@dataclass
class CompletionOutput:
    index: int  # which of the request's n completions
    text: str  # text so far (or the delta, for DELTA output kind)
    token_ids: list[int]  # token ids so far (or the delta)
    cumulative_logprob: float | None  # sum of the sampled tokens' logprobs when logprobs were asked
    logprobs: SampleLogprobs | None  # per token, when asked
    finish_reason: str | None = None  # None while running; "stop", "length" or "abort"
    stop_reason: int | str | None = None  # the stop string or stop token id that ended it

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None  # the prompt text, when the request came as text
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]  # one per completion (n)
    finished: bool  # every completion finished
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache
    prompt_logprobs: list | None = field(default=None)  # per prompt token, when asked
