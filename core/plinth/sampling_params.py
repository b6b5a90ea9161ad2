"""Per-request sampling and stopping parameters (vLLM-compatible names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class SamplingParamsError(ValueError):
    """A sampling parameter is out of range; the message says which and what is allowed."""


class RequestOutputKind(Enum):
    CUMULATIVE = 0  # every output carries the whole text so far
    DELTA = 1  # every output carries only what is new since the last one
    FINAL_ONLY = 2  # one output when the request finishes


_GREEDY_EPS = 1e-5
_INT32_MAX = 2**31 - 1  # per-row sampling settings travel to the device as 32-bit integers


@dataclass
class SamplingParams:
    """How to sample and when to stop, per request.

    Defaults match vLLM's: ``temperature=1.0``, ``max_tokens=16``, no filtering.
    ``temperature == 0`` means greedy decoding.
    """

    n: int = 1  # completions per prompt; siblings share the prompt's cached blocks
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0  # nucleus: keep the smallest set of tokens with mass >= top_p
    top_k: int = 0  # keep the k most likely tokens; 0 or -1 disables
    min_p: float = 0.0  # drop tokens with prob < min_p * max prob
    presence_penalty: float = 0.0  # subtract once for each token already generated
    frequency_penalty: float = 0.0  # subtract per occurrence in the generated tokens
    repetition_penalty: float = 1.0  # HF-style: divide positive / multiply negative logits of seen tokens
    seed: int | None = None  # per-request generator: same seed, same tokens, whatever the batch
    max_tokens: int | None = 16  # None = up to the model's maximum length
    min_tokens: int = 0  # EOS and stop token ids are ignored until this many tokens exist
    stop: list[str] | str | None = None  # stop strings (need detokenized text)
    stop_token_ids: list[int] | None = None  # extra token ids that end the request
    ignore_eos: bool = False  # keep going past the EOS token
    include_stop_str_in_output: bool = False
    logprobs: int | None = None  # top-k logprobs per generated token (+ the sampled one)
    prompt_logprobs: int | None = None  # top-k logprobs per prompt token
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    allowed_token_ids: list[int] | None = None  # only these tokens may be sampled
    bad_words: list[str] | None = None  # words that must never be generated
    logits_processors: list | None = None  # callables (token_ids, logits) -> logits
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    extra_args: dict = field(default_factory=dict)  # for plugins

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        if self.top_k == -1:
            self.top_k = 0
        self._validate()
        if self.temperature < _GREEDY_EPS:
            # Greedy: the filters have no effect; normalise so the sampler can skip them.
            self.temperature = 0.0
            self.top_p, self.top_k, self.min_p = 1.0, 0, 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def _validate(self) -> None:
        checks = [
            (self.n >= 1, f"n must be at least 1, got {self.n}"),
            (self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.top_k >= 0, f"top_k must be 0 or -1 (disabled) or at least 1, got {self.top_k}"),
            (self.top_k <= _INT32_MAX, f"top_k must be at most {_INT32_MAX} (any value at or above the "
                                       f"vocabulary size keeps every token), got {self.top_k}"),
            (0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p}"),
            (-2 <= self.presence_penalty <= 2,
             f"presence_penalty must be in [-2, 2], got {self.presence_penalty}"),
            (-2 <= self.frequency_penalty <= 2,
             f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}"),
            (self.repetition_penalty > 0,
             f"repetition_penalty must be > 0, got {self.repetition_penalty}"),
            (self.max_tokens is None or self.max_tokens >= 1,
             f"max_tokens must be at least 1, got {self.max_tokens}"),
            (0 <= self.min_tokens <= _INT32_MAX, f"min_tokens must be in [0, {_INT32_MAX}], got {self.min_tokens}"),
            (self.max_tokens is None or self.min_tokens <= self.max_tokens,
             f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})"),
            (self.logprobs is None or self.logprobs >= 0,
             f"logprobs must be >= 0, got {self.logprobs}"),
            (self.prompt_logprobs is None or self.prompt_logprobs >= 0,
             f"prompt_logprobs must be >= 0, got {self.prompt_logprobs}"),
            (all(s for s in self.stop), "stop strings must not be empty"),
            (self.allowed_token_ids is None or len(self.allowed_token_ids) > 0,
             "allowed_token_ids must not be empty when given"),
        ]
        for ok, message in checks:
            if not ok:
                raise SamplingParamsError(message)
