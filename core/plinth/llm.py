"""The offline API: ``LLM(model).generate(prompts, SamplingParams(...))``, as in vLLM."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from plinth.engine.engine_args import EngineArgs
from plinth.engine.llm_engine import LLMEngine
from plinth.outputs import RequestOutput
from plinth.sampling_params import RequestOutputKind, SamplingParams

PromptType = str | Sequence[int] | dict
"""A prompt: text, token ids, or ``{"prompt": text}`` / ``{"prompt_token_ids": ids}``."""


class LLM:
    """Batch generation on one platform. ``model=None`` loads the default model (SmolLM2-135M).

    Engine options use vLLM's names (``dtype``, ``max_model_len``, ``max_num_seqs``,
    ``enable_prefix_caching``, ``num_gpu_blocks_override``, ``load_format``, ...);
    ``device`` picks the platform (default: ``$PLINTH_DEVICE`` or the best available).
    """

    def __init__(self, model: str | None = None, **engine_options: Any) -> None:
        self.llm_engine = LLMEngine(EngineArgs.from_kwargs(model=model, **engine_options))
        self._ids = itertools.count()

    def get_tokenizer(self):
        return self.llm_engine.tokenizer

    def generate(
        self,
        prompts: PromptType | Sequence[PromptType],
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        """Generate for every prompt; outputs come back in the prompts' order."""
        prompts = _as_prompt_list(prompts)
        params = sampling_params or SamplingParams()
        params_list = list(params) if isinstance(params, Sequence) else [params] * len(prompts)
        if len(params_list) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(params_list)} sampling params; "
                             "pass one SamplingParams or one per prompt")
        order = []
        try:
            for prompt, p in zip(prompts, params_list, strict=True):
                request_id = f"llm-{next(self._ids)}"
                text_or_ids = prompt.get("prompt", prompt.get("prompt_token_ids")) if isinstance(prompt, dict) \
                    else prompt
                self.llm_engine.add_request(request_id, text_or_ids, _final_only(p))
                order.append(request_id)
        except BaseException:
            self.llm_engine.abort_request(order)  # a bad prompt leaves nothing of this call behind
            raise
        return self._run(order, use_tqdm)

    def chat(
        self,
        messages: list[dict] | list[list[dict]],
        sampling_params: SamplingParams | None = None,
        *,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        use_tqdm: bool = False,
    ) -> list[RequestOutput]:
        """Apply the tokenizer's chat template to each conversation, then generate."""
        tokenizer = self.get_tokenizer()
        if tokenizer is None:
            raise ValueError("chat needs a tokenizer; this model was loaded without one")
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        prompts = [
            {"prompt_token_ids": list(tokenizer.apply_chat_template(
                conv, chat_template=chat_template, add_generation_prompt=add_generation_prompt,
                tokenize=True, return_dict=True)["input_ids"])}
            for conv in conversations
        ]
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    def _run(self, order: list[str], use_tqdm: bool) -> list[RequestOutput]:
        results: dict[str, RequestOutput] = {}
        bar = None
        if use_tqdm:
            from tqdm import tqdm

            bar = tqdm(total=len(order), desc="generating", unit="req")
        engine = self.llm_engine
        try:
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if out.finished:
                        results[out.request_id] = out
                        if bar is not None:
                            bar.update(1)
        except BaseException:
            engine.abort_request(order)  # never leave work behind on an error or Ctrl-C
            raise
        finally:
            if bar is not None:
                bar.close()
        return [results[r] for r in order]


def _as_prompt_list(prompts) -> list:
    if isinstance(prompts, (str, dict)):
        return [prompts]
    prompts = list(prompts)
    if prompts and all(isinstance(t, int) for t in prompts):
        return [prompts]  # one prompt given as token ids
    return prompts


def _final_only(params: SamplingParams) -> SamplingParams:
    import dataclasses

    return dataclasses.replace(params, output_kind=RequestOutputKind.FINAL_ONLY)
