"""What the model runner remembers about each request between steps."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from plinth.sampling_params import SamplingParams
    from plinth.sched.outputs import NewRequestData


_serials = itertools.count()


def needs_output_history(params: SamplingParams) -> bool:
    """Whether sampling this request reads its output tokens so far (penalties, bad words,
    min_tokens that ban something, logits processors): its metadata is rebuilt every step, and
    under async scheduling no token of it may be pending when a step is planned. ``min_tokens``
    with ``ignore_eos`` and no ``stop_token_ids`` bans nothing (benchmarks send it so)."""
    bans_until_min = params.min_tokens and (not params.ignore_eos or params.stop_token_ids)
    return bool(params.presence_penalty or params.frequency_penalty or params.repetition_penalty != 1.0
                or params.bad_words or bans_until_min or params.logits_processors)


@dataclass
class RequestState:
    """The runner's copy of one request; rebuilt from scratch when a request resumes."""

    req_id: str
    prompt_token_ids: list[int]
    output_token_ids: list[int]  # grows by the runner's own samples
    token_ids: list[int]  # prompt + outputs, the model's input history
    sampling_params: SamplingParams
    block_ids: list[int]  # the whole block table
    num_computed_tokens: int  # tokens whose KV is in the cache before this step
    generator: torch.Generator | None = None  # per-request RNG when the params carry a seed
    bad_words_token_ids: list[list[int]] | None = None  # bad words as token sequences
    prompt_logprobs: list = field(default_factory=list)  # collected over prefill chunks
    num_pending: int = 0  # sampled on the device, not yet appended (async scheduling): 0 or 1
    pending_index: int = 0  # where the pending token sits in the last step's sampled-ids tensor
    serial: int = field(default_factory=lambda: next(_serials))  # unique per state: keys cached metadata

    @classmethod
    def from_new(cls, new: NewRequestData) -> RequestState:
        prompt, outputs = list(new.prompt_token_ids), list(new.output_token_ids)
        return cls(new.req_id, prompt, outputs, prompt + outputs, new.sampling_params,
                   list(new.block_ids), new.num_computed_tokens)

    @property
    def num_tokens(self) -> int:
        """Prompt + outputs, counting a pending sampled token."""
        return len(self.token_ids) + self.num_pending

    def append_sampled(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)
        self.token_ids.append(token_id)
