"""Request bodies of the OpenAI-compatible API (pydantic: they are the /openapi.json schema).

Every field of OpenAI's own request schema is accepted. Fields without effect here are
no-ops (``user``, ``store``, ``metadata``, ``service_tier``, ...); fields whose effect we do
not implement (``tools``, ``logit_bias``, ``suffix``, a non-text ``response_format``) are
rejected with 400 when set, never silently ignored. Any other field is rejected with 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plinth_serve.server.limits import DEFAULT_LIMITS as L

#: unknown fields are 400s, and so are values of another JSON type than the schema's (strict: ``true`` is not the
#: number 1, ``"5"`` is not the integer 5; an integer still counts as a number, as JSON Schema says)
_FORBID = ConfigDict(extra="forbid", strict=True)

Stop = Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]],
                                                        Field(max_length=L.max_stop_strings)] | None
TokenIds = list[Annotated[int, Field(ge=0)]]


class StreamOptions(BaseModel):
    model_config = _FORBID
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False  # vLLM's: usage on every chunk


class SamplingFields(BaseModel):
    """Fields shared by completions and chat: OpenAI's sampling fields and vLLM's extras."""

    model_config = _FORBID
    model: str | None = Field(None, description="Served model name; omitted = the served model.")
    n: int = Field(1, ge=1, le=L.max_n)
    temperature: float | None = Field(None, ge=0, description="0 = greedy; default 1.0")
    top_p: float | None = Field(None, gt=0, le=1)
    frequency_penalty: float | None = Field(0.0, ge=-2, le=2)
    presence_penalty: float | None = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: Stop = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, float] | None = Field(None, description="Not supported: must be empty.")
    user: str | None = Field(None, description="No-op.")
    # vLLM's extra sampling fields
    top_k: int | None = Field(None, ge=-1, le=2**31 - 1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=100)
    min_tokens: int = Field(0, ge=0, le=2**31 - 1)
    ignore_eos: bool = False
    stop_token_ids: TokenIds | None = Field(None, max_length=L.max_stop_strings * 4)
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    prompt_logprobs: int | None = Field(None, ge=0, le=L.max_logprobs)
    priority: int = Field(0, ge=-(2**31), le=2**31 - 1, description="Lower runs first (policy 'priority').")
    return_token_ids: bool = Field(False, description="vLLM's: also return token ids, the prompt's "
                                   "(`prompt_token_ids`) and the output's (`token_ids`); streamed, the prompt's "
                                   "come in the first chunk and each chunk carries its new tokens' ids.")


class CompletionRequest(SamplingFields):
    """POST /v1/completions. ``max_tokens`` + prompt longer than the context is clamped to the room left."""

    prompt: (Annotated[str, Field(min_length=1, max_length=L.max_prompt_chars)]
             | Annotated[list[Annotated[str, Field(min_length=1, max_length=L.max_prompt_chars)]],
                         Field(min_length=1, max_length=L.max_prompt_list)]
             | Annotated[TokenIds, Field(min_length=1)]
             | Annotated[list[Annotated[TokenIds, Field(min_length=1)]],
                         Field(min_length=1, max_length=L.max_prompt_list)])
    max_tokens: int | None = Field(16, ge=1)
    echo: bool | None = False
    logprobs: int | None = Field(None, ge=0, le=L.max_logprobs)
    best_of: int | None = Field(None, ge=1, le=L.max_n, description="Must equal n when given.")
    suffix: str | None = Field(None, description="Not supported: must be null.")


class TextPart(BaseModel):
    model_config = _FORBID
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = _FORBID
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class ChatTemplateKwargs(BaseModel):
    """The chat-template variables a request may set (an allow-list)."""

    model_config = _FORBID
    enable_thinking: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text", "json_object", "json_schema"]


class ChatCompletionRequest(SamplingFields):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(..., min_length=1, max_length=L.max_messages)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated by OpenAI; max_completion_tokens wins.")
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=L.max_logprobs)
    response_format: ResponseFormat | None = Field(None, description="Only {'type': 'text'} for now.")
    tools: list[dict[str, Any]] | None = Field(None, description="Not supported: must be empty.")
    tool_choice: str | dict[str, Any] | None = Field(None, description="Only 'none' or 'auto' without tools.")
    parallel_tool_calls: bool | None = Field(None, description="No-op.")
    functions: list[dict[str, Any]] | None = Field(None, description="Not supported: must be empty.")
    function_call: str | dict[str, Any] | None = Field(None, description="No-op without functions.")
    store: bool | None = Field(None, description="No-op.")
    metadata: dict[str, str] | None = Field(None, description="No-op.")
    service_tier: str | None = Field(None, description="No-op.")
    reasoning_effort: str | None = Field(None, description="No-op.")
    modalities: list[Literal["text"]] | None = Field(None, description="Only ['text'].")
    prediction: dict[str, Any] | None = Field(None, description="No-op.")
    web_search_options: dict[str, Any] | None = Field(None, description="Not supported: must be null.")
    verbosity: str | None = Field(None, description="No-op.")
    prompt_cache_key: str | None = Field(None, description="No-op.")
    safety_identifier: str | None = Field(None, description="No-op.")
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: ChatTemplateKwargs | None = None


class TokenizeCompletionRequest(BaseModel):
    model_config = _FORBID
    model: str | None = None
    prompt: str = Field(..., max_length=L.max_prompt_chars)
    add_special_tokens: bool = True


class TokenizeChatRequest(BaseModel):
    model_config = _FORBID
    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=L.max_messages)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: ChatTemplateKwargs | None = None


class DetokenizeRequest(BaseModel):
    model_config = _FORBID
    model: str | None = None
    tokens: TokenIds = Field(..., max_length=L.max_prompt_tokens)
