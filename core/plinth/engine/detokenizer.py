"""Incremental detokenization of one request's output, with stop strings.

Text is produced with the prefix/read offsets algorithm (as in vLLM and TGI): each new
token is decoded together with a few tokens before it, and only the part past the
already-read text is emitted. A decode that ends in U+FFFD means the new token ended
in the middle of a multi-byte character; nothing is emitted until it is complete.
It works with any Hugging Face tokenizer, slow or fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from plinth.engine.stop_checker import find_stop_string, partial_stop_length, truncate_at_stop

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from plinth.sampling_params import SamplingParams

# Prompt tokens decoded before the first output token, so it gets its leading space right.
INITIAL_CONTEXT_TOKENS = 5
REPLACEMENT_CHAR = "\ufffd"


class DetokenizerError(RuntimeError):
    """The detokenizer was used out of order; the message says what the caller must do."""


class IncrementalDetokenizer:
    """One request's output text, built token by token.

    ``update`` appends tokens and reports a matched stop string; ``output_text`` is the
    text so far (already cut at a stop string); ``get_next_output_text`` is what to
    stream, holding back text that may still become a stop string.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, prompt_token_ids: Sequence[int], params: SamplingParams
    ) -> None:
        self.tokenizer = tokenizer
        self.token_ids: list[int] = list(prompt_token_ids)  # prompt, then output
        self.num_prompt_tokens = len(self.token_ids)
        self.stop: list[str] = list(params.stop or [])
        self.include_stop_str_in_output = params.include_stop_str_in_output
        self.min_tokens = params.min_tokens
        self._decode_kwargs = {
            "skip_special_tokens": params.skip_special_tokens,
            "spaces_between_special_tokens": params.spaces_between_special_tokens,
        }
        self.output_text = ""
        self.stop_reason: str | None = None  # the stop string that ended the request, if any
        self._prefix_offset = max(self.num_prompt_tokens - INITIAL_CONTEXT_TOKENS, 0)
        self._read_offset = self.num_prompt_tokens
        self._prefix_text: str | None = None  # decode of token_ids[prefix:read], cached
        self._sent_offset = 0  # chars of output_text already returned as deltas

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    def update(self, new_token_ids: Sequence[int], stop_terminated: bool = False) -> str | None:
        """Append ``new_token_ids`` and extend ``output_text``.

        ``stop_terminated``: the last token is EOS or a stop token id; its text is left
        out unless ``include_stop_str_in_output``. Stop strings count only once more than
        ``min_tokens`` tokens exist. Returns the stop string that matched (the request is
        then finished and tokens after the match are ignored), else None.
        """
        if self.stop_reason is not None:
            raise DetokenizerError(
                f"the request already stopped at {self.stop_reason!r}; finish it instead of adding tokens"
            )
        token_ids = list(new_token_ids)
        skip_last = stop_terminated and not self.include_stop_str_in_output and token_ids
        for i, token_id in enumerate(token_ids):
            self.token_ids.append(token_id)
            if skip_last and i == len(token_ids) - 1:
                break
            delta = self._decode_next()
            self.output_text += delta
            if delta and self.stop and self.num_output_tokens > self.min_tokens:
                match = find_stop_string(self.output_text, len(delta), self.stop)
                if match is not None:
                    stop, index = match
                    self.output_text = truncate_at_stop(self.output_text, stop, index, self.include_stop_str_in_output)
                    self.stop_reason = stop
                    return stop
        return None

    def get_next_output_text(self, finished: bool, delta: bool) -> str:
        """The text to stream now: everything so far, or only what is new since the last
        delta; unless ``finished``, text that may still begin a stop string is held back.
        """
        held = 0
        if not finished and not self.include_stop_str_in_output and self.stop_reason is None:
            held = partial_stop_length(self.output_text, self.stop)
        length = len(self.output_text) - held
        if not delta:
            return self.output_text[:length]
        start = self._sent_offset
        self._sent_offset = max(start, length)
        return self.output_text[start:length]

    def _decode_next(self) -> str:
        """Text added by the tokens past the read offset; empty while a character is incomplete."""
        if self._prefix_text is None:
            self._prefix_text = self._decode(self.token_ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self.token_ids[self._prefix_offset:])
        if len(new_text) <= len(self._prefix_text) or new_text.endswith(REPLACEMENT_CHAR):
            return ""
        delta = new_text[len(self._prefix_text):]
        self._prefix_offset, self._read_offset = self._read_offset, len(self.token_ids)
        self._prefix_text = None
        return delta

    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, **self._decode_kwargs) if token_ids else ""
