"""From request fields to prompt token ids: model check, tokenization, chat template, length rules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth_serve.server.errors import APIError, bad_request

if TYPE_CHECKING:
    from plinth_serve.server.protocol import ChatMessage, ChatTemplateKwargs
    from plinth_serve.server.state import ServerState


#: the start of every error about what a server without a tokenizer cannot do
NO_TOKENIZER = "this server runs without a tokenizer (--skip-tokenizer-init)"


def check_needs_tokenizer(state: ServerState, wants: dict[str, bool]) -> None:
    """400 for the first field set in ``wants`` (name -> is it set) when the server has no tokenizer."""
    if state.tokenizer is not None:
        return
    for param, wanted in wants.items():
        if wanted:
            raise bad_request(f"{NO_TOKENIZER}: `{param}` needs one (token texts); leave it unset", param)


def check_model(state: ServerState, model: str | None) -> str:
    """The served name to report; 404 for a name we do not serve (omitted = the served model)."""
    if model is None or model == "":
        return state.model_name
    if model not in state.served_names:
        raise APIError(404, f"The model `{model}` does not exist. Served: {', '.join(state.served_names)}", "model")
    return model


def completion_prompts(state: ServerState, prompt: str | list) -> list[tuple[str | None, list[int]]]:
    """Each prompt of a completions request as (text or None, token ids)."""
    if isinstance(prompt, str):
        items: list = [prompt]
    elif prompt and isinstance(prompt[0], int):
        items = [prompt]
    else:
        items = list(prompt)
    out = []
    for item in items:
        if isinstance(item, str):
            if state.tokenizer is None:
                raise bad_request(f"{NO_TOKENIZER}: send the prompt as token ids", "prompt")
            out.append((item, list(state.tokenizer(item, add_special_tokens=True).input_ids)))
        else:
            out.append((None, check_token_ids(state, item, "prompt")))
    for _, ids in out:
        if not ids:
            raise bad_request("the prompt is empty: it has no tokens", "prompt")
    return out


def check_token_ids(state: ServerState, ids: list[int], param: str) -> list[int]:
    vocab = state.vocab_size
    bad = next((t for t in ids if not 0 <= t < vocab), None)
    if bad is not None:
        raise bad_request(f"token id {bad} is outside the vocabulary [0, {vocab})", param)
    return list(ids)


def render_chat(state: ServerState, messages: list[ChatMessage], *, add_generation_prompt: bool,
                continue_final_message: bool, template_kwargs: ChatTemplateKwargs | None) -> list[int]:
    """Apply the chat template (the tokenizer's, or --chat-template) and tokenize the result."""
    if add_generation_prompt and continue_final_message:
        raise bad_request("add_generation_prompt and continue_final_message cannot both be true",
                          "continue_final_message")
    if continue_final_message and messages[-1].role != "assistant":
        raise bad_request("continue_final_message needs the last message to be the assistant's",
                          "continue_final_message")
    if state.tokenizer is None:
        raise bad_request(f"{NO_TOKENIZER}: chat needs its chat template; send token ids to /v1/completions",
                          "messages")
    conversation = [_as_template_message(m) for m in messages]
    kwargs = template_kwargs.model_dump(exclude_none=True) if template_kwargs else {}
    try:
        text = state.tokenizer.apply_chat_template(
            conversation, chat_template=state.chat_template, add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message, tokenize=False, **kwargs)
    except Exception as exc:  # jinja errors raised by the template itself (e.g. role order)
        raise bad_request(f"the chat template rejected the messages: {_first_line(exc)}", "messages") from None
    return list(state.tokenizer(text, add_special_tokens=False).input_ids)


def _as_template_message(m: ChatMessage) -> dict:
    content = m.content
    if isinstance(content, list):
        content = "\n".join(part.text for part in content)
    msg = {"role": m.role, "content": content if content is not None else ""}
    for key in ("name", "tool_calls", "tool_call_id"):
        value = getattr(m, key)
        if value is not None:
            msg[key] = value
    return msg


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def check_length(state: ServerState, num_prompt_tokens: int) -> None:
    """The wording clients match on (vLLM's), with param "input_tokens"."""
    limit = state.max_model_len
    if num_prompt_tokens >= limit:
        raise bad_request(
            f"This model's maximum context length is {limit} tokens. However, your prompt contains "
            f"{num_prompt_tokens} input tokens, which exceeds this limit even without any output tokens. "
            "Please reduce the length of the input prompt.", "input_tokens")


def resolve_max_tokens(state: ServerState, num_prompt_tokens: int, requested: int | None) -> int:
    """``requested`` clamped to the room left in the context (vLLM's behaviour); None = all the room."""
    limit = state.max_model_len
    if requested is not None and requested > limit:
        raise bad_request(f"max_tokens ({requested}) is larger than the model's maximum context length "
                          f"({limit} tokens)", "max_tokens")
    room = limit - num_prompt_tokens
    return room if requested is None else min(requested, room)
