"""Bounds checked before the engine sees a request (SERVER.md "Limits")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_n: int = 128  # completions per prompt
    max_logprobs: int = 20  # logprobs / top_logprobs / prompt_logprobs
    max_stop_strings: int = 16
    max_prompt_list: int = 1024  # prompts in one completions request
    max_prompt_chars: int = 4 * 1024 * 1024  # characters in one text prompt
    max_prompt_tokens: int = 1 << 20  # token ids in one prompt or /detokenize request
    max_messages: int = 4096  # chat messages in one request
    max_body_bytes: int = 32 * 1024 * 1024  # request body
    max_header_bytes: int = 16 * 1024  # request line + headers (uvicorn h11)
    max_queued_requests: int = 1024  # sequences admitted but not yet producing tokens (-> 503)
    max_queued_prompt_tokens: int = 4 * 1024 * 1024  # their prompt tokens (-> 503)
    max_error_chars: int = 1000  # error messages are cut to this length


DEFAULT_LIMITS = Limits()
