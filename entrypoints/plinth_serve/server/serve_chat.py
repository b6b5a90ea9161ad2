"""POST /v1/chat/completions: JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
from starlette.responses import Response, StreamingResponse

from plinth_serve.server import prompts as P
from plinth_serve.server import streams as S
from plinth_serve.server.sampling import chat_logprobs, check_chat, sampling_params

if TYPE_CHECKING:
    from starlette.requests import Request

    from plinth_serve.server import ipc
    from plinth_serve.server.protocol import ChatCompletionRequest
    from plinth_serve.server.state import ServerState


async def create_chat_completion(state: ServerState, req: ChatCompletionRequest, raw: Request) -> Response:
    check_chat(req)
    model = P.check_model(state, req.model)
    P.check_token_ids(state, req.stop_token_ids or [], "stop_token_ids")
    ids = P.render_chat(state, req.messages, add_generation_prompt=req.add_generation_prompt,
                        continue_final_message=req.continue_final_message, template_kwargs=req.chat_template_kwargs)
    P.check_length(state, len(ids))
    requested = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    max_tokens = P.resolve_max_tokens(state, len(ids), requested)
    params = sampling_params(req, max_tokens=max_tokens, logprobs=chat_logprobs(req))
    job = S.submit(state, "chatcmpl", model, [(ids, params)], req.priority)
    if req.stream:
        return StreamingResponse(S.sse_stream(job, lambda: _chunks(job, req, ids)), media_type="text/event-stream")
    choices = await S.until_disconnect(raw, S.fold(job))
    k = req.top_logprobs or 0
    body = {"id": job.id, "object": "chat.completion", "created": job.created, "model": job.model,
            "choices": [{"index": c.index, "message": {"role": "assistant", "content": "".join(c.text)},
                         "logprobs": _logprobs(c.logprobs, k) if req.logprobs else None,
                         "finish_reason": S.finish_reason(c.finish_reason), "stop_reason": c.stop_reason,
                         **({"token_ids": c.token_ids} if req.return_token_ids else {})}
                        for c in choices],
            "usage": S.usage(job, sum(len(c.token_ids) for c in choices))}
    if req.return_token_ids:
        body["prompt_token_ids"] = ids
    return Response(msgspec.json.encode(body), media_type="application/json")


def _entry(text: str, logprob: float) -> dict:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def _logprobs(rows: list[ipc.TokenLogprobs], k: int) -> dict:
    content = []
    for row in rows:
        top = sorted((j for j in range(len(row.ranks)) if row.ranks[j] <= k), key=lambda j: row.ranks[j])[:k]
        content.append({**_entry(row.texts[0], row.logprobs[0]),
                        "top_logprobs": [_entry(row.texts[j], row.logprobs[j]) for j in top]})
    return {"content": content}


async def _chunks(job: S.Job, req: ChatCompletionRequest, prompt_ids: list[int]) -> AsyncIterator[bytes]:
    opts = req.stream_options
    include_usage = bool(opts and opts.include_usage)
    continuous = bool(opts and opts.continuous_usage_stats)
    head = {"id": job.id, "object": "chat.completion.chunk", "created": job.created, "model": job.model}
    k = req.top_logprobs or 0
    extra = {"usage": None} if include_usage and not continuous else {}
    for index in range(job.n):  # the prompt's ids (return_token_ids) ride on the first chunk
        ids = {"prompt_token_ids": prompt_ids} if req.return_token_ids and index == 0 else {}
        yield S.sse({**head, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""},
                                          "logprobs": None, "finish_reason": None}], **extra, **ids})
    generated = 0
    async for _, delta in S.merged(job):
        for c in delta.completions:
            generated += len(c.token_ids)
            if not (c.text or c.finish_reason or c.logprobs or (req.return_token_ids and c.token_ids)):
                continue
            choice = {"index": c.index, "delta": {"content": c.text} if c.text else {},
                      "logprobs": _logprobs(c.logprobs or [], k) if req.logprobs else None,
                      "finish_reason": S.finish_reason(c.finish_reason)}
            if req.return_token_ids:
                choice["token_ids"] = c.token_ids
            if c.finish_reason is not None:
                choice["stop_reason"] = c.stop_reason
            chunk = {**head, "choices": [choice]}
            if include_usage:
                chunk["usage"] = S.usage(job, generated) if continuous else None
            yield S.sse(chunk)
    if include_usage:
        yield S.sse({**head, "choices": [], "usage": S.usage(job, generated)})
