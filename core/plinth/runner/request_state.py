"""What the model runner remembers about each request between steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from plinth.sampling_params import SamplingParams
    from plinth.sched.outputs import NewRequestData


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

    @classmethod
    def from_new(cls, new: NewRequestData) -> RequestState:
        prompt, outputs = list(new.prompt_token_ids), list(new.output_token_ids)
        return cls(new.req_id, prompt, outputs, prompt + outputs, new.sampling_params,
                   list(new.block_ids), new.num_computed_tokens)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    def append_sampled(self, token_id: int) -> None:
        self.output_token_ids.append(token_id)
        self.token_ids.append(token_id)
