"""Request fields to SamplingParams; fields we accept but cannot honour are refused here, by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.sampling_params import RequestOutputKind, SamplingParams, SamplingParamsError
from plinth_serve.server.errors import bad_request

if TYPE_CHECKING:
    from plinth_serve.server.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields


def sampling_params(req: SamplingFields, *, max_tokens: int, logprobs: int | None,
                    prompt_logprobs: int | None = None) -> SamplingParams:
    """SamplingParams in DELTA output mode; SamplingParamsError becomes a 400 naming the field."""
    _check_common(req)
    try:
        return SamplingParams(
            n=req.n, temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p, top_k=req.top_k or 0, min_p=req.min_p or 0.0,
            presence_penalty=req.presence_penalty or 0.0, frequency_penalty=req.frequency_penalty or 0.0,
            repetition_penalty=req.repetition_penalty or 1.0, seed=req.seed, max_tokens=max_tokens,
            min_tokens=req.min_tokens, stop=req.stop, stop_token_ids=req.stop_token_ids, ignore_eos=req.ignore_eos,
            include_stop_str_in_output=req.include_stop_str_in_output, logprobs=logprobs,
            prompt_logprobs=req.prompt_logprobs if req.prompt_logprobs is not None else prompt_logprobs,
            skip_special_tokens=req.skip_special_tokens,
            spaces_between_special_tokens=req.spaces_between_special_tokens,
            output_kind=RequestOutputKind.DELTA)
    except SamplingParamsError as exc:
        message = str(exc)
        raise bad_request(message, message.split(" ", 1)[0]) from None


def _check_common(req: SamplingFields) -> None:
    if req.logit_bias:
        raise bad_request("logit_bias is not supported yet; remove it", "logit_bias")
    if req.stream_options is not None and not req.stream:
        raise bad_request("stream_options is only allowed when stream is true", "stream_options")


def check_completion(req: CompletionRequest) -> None:
    if req.suffix:
        raise bad_request("suffix is not supported; remove it", "suffix")
    if req.best_of is not None and req.best_of != req.n:
        raise bad_request(f"best_of ({req.best_of}) different from n ({req.n}) is not supported", "best_of")
    if req.echo and req.logprobs is not None and req.stream:
        raise bad_request("echo with logprobs is supported without streaming only; set stream to false", "echo")


def check_chat(req: ChatCompletionRequest) -> None:
    if req.tools or req.functions:
        raise bad_request("tool calling is not supported yet; remove tools/functions", "tools")
    if req.tool_choice not in (None, "none", "auto"):
        raise bad_request("tool_choice needs tools, which are not supported yet", "tool_choice")
    if req.response_format is not None and req.response_format.type != "text":
        raise bad_request(f"response_format {req.response_format.type!r} (structured output) is not supported "
                          "yet; only 'text'", "response_format")
    if req.web_search_options is not None:
        raise bad_request("web_search_options is not supported", "web_search_options")
    if req.top_logprobs is not None and not req.logprobs:
        raise bad_request("top_logprobs needs logprobs: true", "top_logprobs")


def chat_logprobs(req: ChatCompletionRequest) -> int | None:
    return (req.top_logprobs or 0) if req.logprobs else None
