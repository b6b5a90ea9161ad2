"""POST /v1/completions: JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
from starlette.responses import Response, StreamingResponse

from plinth_serve.server import prompts as P
from plinth_serve.server import streams as S
from plinth_serve.server.sampling import check_completion, sampling_params

if TYPE_CHECKING:
    from starlette.requests import Request

    from plinth_serve.server import ipc
    from plinth_serve.server.protocol import CompletionRequest
    from plinth_serve.server.state import ServerState


async def create_completion(state: ServerState, req: CompletionRequest, raw: Request) -> Response:
    check_completion(req)
    model = P.check_model(state, req.model)
    P.check_needs_tokenizer(state, {"echo": bool(req.echo), "logprobs": req.logprobs is not None,
                                    "prompt_logprobs": req.prompt_logprobs is not None, "stop": bool(req.stop)})
    prompts = P.completion_prompts(state, req.prompt)
    P.check_token_ids(state, req.stop_token_ids or [], "stop_token_ids")
    planned = []
    for _, ids in prompts:
        P.check_length(state, len(ids))
        max_tokens = P.resolve_max_tokens(state, len(ids), req.max_tokens)
        echo_logprobs = req.logprobs if req.echo and req.logprobs is not None else None
        planned.append((ids, sampling_params(req, max_tokens=max_tokens, logprobs=req.logprobs,
                                             prompt_logprobs=echo_logprobs)))
    job = S.submit(state, "cmpl", model, planned, req.priority)
    echoes = [text if text is not None else state.tokenizer.decode(ids) for text, ids in prompts] \
        if req.echo else None
    prompt_ids = [ids for _, ids in prompts]
    if req.stream:
        return StreamingResponse(S.sse_stream(job, lambda: _chunks(job, req, echoes, prompt_ids)),
                                 media_type="text/event-stream")
    choices = await S.until_disconnect(raw, S.fold(job))
    body = {"id": job.id, "object": "text_completion", "created": job.created, "model": job.model,
            "choices": [_choice(state, c, req, echoes[c.index // job.n] if echoes else "",
                                prompt_ids[c.index // job.n]) for c in choices],
            "usage": S.usage(job, sum(len(c.token_ids) for c in choices))}
    return Response(msgspec.json.encode(body), media_type="application/json")


def _choice(state: ServerState, c: S.Choice, req: CompletionRequest, echo: str, prompt_ids: list[int]) -> dict:
    text = echo + "".join(c.text)
    logprobs = None
    if req.logprobs is not None:
        logprobs = _logprobs(c.logprobs, req.logprobs, len(echo))
        if req.echo and c.prompt_logprobs is not None:
            first_token_text = state.tokenizer.decode(prompt_ids[:1])
            scored = _logprobs([r for r in c.prompt_logprobs if r is not None], req.logprobs, len(first_token_text))
            logprobs = _with_prompt(scored, first_token_text, logprobs)
    choice = {"index": c.index, "text": text, "logprobs": logprobs,
              "finish_reason": S.finish_reason(c.finish_reason), "stop_reason": c.stop_reason}
    if req.prompt_logprobs is not None and c.prompt_logprobs is not None:
        choice["prompt_logprobs"] = [None if r is None else {
            str(t): {"logprob": lp, "rank": rank, "decoded_token": txt}
            for t, lp, rank, txt in zip(r.token_ids, r.logprobs, r.ranks, r.texts, strict=True)} for r in c.prompt_logprobs]
    if req.return_token_ids:
        choice["prompt_token_ids"], choice["token_ids"] = prompt_ids, c.token_ids
    return choice


def _with_prompt(scored: dict, first_token_text: str, generated: dict) -> dict:
    """OpenAI's echo layout: the prompt tokens' logprobs (the first token has none), then the output's."""
    prompt = {"tokens": [first_token_text] + scored["tokens"], "token_logprobs": [None] + scored["token_logprobs"],
              "top_logprobs": [None] + scored["top_logprobs"], "text_offset": [0] + scored["text_offset"]}
    return {key: prompt[key] + generated[key] for key in prompt}  # generated offsets already count the echo


def _logprobs(rows: list[ipc.TokenLogprobs], k: int, offset: int) -> dict:
    out: dict = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for row in rows:
        out["tokens"].append(row.texts[0])
        out["token_logprobs"].append(row.logprobs[0])
        out["top_logprobs"].append({row.texts[j]: row.logprobs[j] for j in _top(row, k)})
        out["text_offset"].append(offset)
        offset += len(row.texts[0])
    return out


def _top(row: ipc.TokenLogprobs, k: int) -> list[int]:
    """Positions of the k most likely tokens (the sampled one too when it ranks within k)."""
    return sorted((j for j in range(len(row.ranks)) if row.ranks[j] <= k), key=lambda j: row.ranks[j])[:k]


async def _chunks(job: S.Job, req: CompletionRequest, echoes: list[str] | None,
                  prompt_ids: list[list[int]]) -> AsyncIterator[bytes]:
    opts = req.stream_options
    include_usage = bool(opts and opts.include_usage)
    continuous = bool(opts and opts.continuous_usage_stats)
    head = {"id": job.id, "object": "text_completion", "created": job.created, "model": job.model}
    offsets = [0] * (len(job.streams) * job.n)
    unsent_prompt_ids = [req.return_token_ids] * len(offsets)  # the prompt's ids go in a choice's first chunk

    def choice(index: int, text: str, **fields) -> dict:
        out = {"index": index, "text": text, **fields}
        if unsent_prompt_ids[index]:
            out["prompt_token_ids"] = prompt_ids[index // job.n]
            unsent_prompt_ids[index] = False
        return out

    generated = 0
    if echoes:
        for index in range(len(offsets)):
            echo = echoes[index // job.n]
            offsets[index] = len(echo)
            yield S.sse({**head, "choices": [choice(index, echo, logprobs=None, finish_reason=None, stop_reason=None)]})
    async for p, delta in S.merged(job):
        for c in delta.completions:
            generated += len(c.token_ids)
            if not (c.text or c.finish_reason or c.logprobs or (req.return_token_ids and c.token_ids)):
                continue
            index = p * job.n + c.index
            logprobs = _logprobs(c.logprobs or [], req.logprobs or 0, offsets[index]) \
                if req.logprobs is not None else None
            offsets[index] += len(c.text)
            ids = {"token_ids": c.token_ids} if req.return_token_ids else {}
            chunk = {**head, "choices": [choice(index, c.text, logprobs=logprobs,
                                                finish_reason=S.finish_reason(c.finish_reason),
                                                stop_reason=c.stop_reason, **ids)]}
            if include_usage:
                chunk["usage"] = S.usage(job, generated) if continuous else None
            yield S.sse(chunk)
    if include_usage:
        yield S.sse({**head, "choices": [], "usage": S.usage(job, generated)})
