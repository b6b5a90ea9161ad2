"""Running one HTTP request's engine requests: submit, merge their deltas, fold or stream them."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from plinth_serve.server.errors import APIError, error_body

if TYPE_CHECKING:
    from starlette.requests import Request

    from plinth.sampling_params import SamplingParams
    from plinth_serve.server import ipc
    from plinth_serve.server.state import ServerState

_json = msgspec.json.Encoder()
logger = logging.getLogger(__name__)


@dataclass
class Choice:
    """One completion, folded from its deltas (non-streaming responses)."""

    index: int
    text: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[ipc.TokenLogprobs] = field(default_factory=list)
    prompt_logprobs: list[ipc.TokenLogprobs | None] | None = None  # when asked (echo + logprobs, prompt_logprobs)
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class Job:
    """The engine requests behind one HTTP request (one per prompt, each with n completions)."""

    id: str
    created: int
    model: str
    n: int
    prompt_lens: list[int]
    streams: list[AsyncIterator[ipc.RequestDelta]]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def submit(state: ServerState, prefix: str, model: str,
           prompts: list[tuple[list[int], SamplingParams]], priority: int) -> Job:
    """Submit every prompt, or none: a refusal part-way cancels those already queued."""
    if state.draining:
        raise APIError(503, "the server is shutting down and accepts no new requests")
    job_id, streams, submitted = new_id(prefix), [], []
    try:
        for i, (ids, params) in enumerate(prompts):
            rid = f"{job_id}-{i}"
            streams.append(state.client.submit(rid, ids, params, priority))
            submitted.append(rid)
    except BaseException:
        for rid in submitted:
            state.client.cancel(rid)
        raise
    return Job(job_id, int(time.time()), model, prompts[0][1].n, [len(ids) for ids, _ in prompts], streams)


async def merged(job: Job) -> AsyncIterator[tuple[int, ipc.RequestDelta]]:
    """(prompt index, delta) from all of the job's streams as they arrive."""
    if len(job.streams) == 1:
        async for delta in job.streams[0]:
            yield 0, delta
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[ipc.RequestDelta]) -> None:
        try:
            async for delta in stream:
                queue.put_nowait((i, delta))
        except BaseException as exc:
            queue.put_nowait((i, exc))
            raise
        finally:
            queue.put_nowait((i, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(job.streams)]
    try:
        open_streams = len(tasks)
        while open_streams:
            i, item = await queue.get()
            if item is None:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def fold(job: Job) -> list[Choice]:
    """Every completion of the job, in choice order (prompt index * n + completion index)."""
    choices = [Choice(i) for i in range(len(job.streams) * job.n)]
    async for p, delta in merged(job):
        if delta.prompt_logprobs is not None:
            for i in range(job.n):
                choices[p * job.n + i].prompt_logprobs = delta.prompt_logprobs
        for c in delta.completions:
            choice = choices[p * job.n + c.index]
            choice.text.append(c.text)
            choice.token_ids.extend(c.token_ids)
            if c.logprobs:
                choice.logprobs.extend(c.logprobs)
            if c.finish_reason is not None:
                choice.finish_reason, choice.stop_reason = c.finish_reason, c.stop_reason
    return choices


def usage(job: Job, completion_tokens: int) -> dict:
    prompt_tokens = sum(job.prompt_lens)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def finish_reason(reason: str | None) -> str | None:
    if reason == "abort":
        raise APIError(503, "the request was aborted by the server")
    return reason


async def until_disconnect(request: Request, work: Awaitable[Any]) -> Any:
    """Await ``work`` unless the client disconnects first; then cancel it (which aborts its requests)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.cancelled():
        raise APIError(400, "the client disconnected")
    return task.result()


def sse(payload: Any) -> bytes:
    return b"data: " + _json.encode(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


async def sse_stream(job: Job, chunks: Callable[[], AsyncIterator[bytes]]) -> AsyncIterator[bytes]:
    """SSE framing with errors in-band: ``data: {"error": ...}`` then ``[DONE]``."""
    try:
        async for chunk in chunks():
            yield chunk
    except APIError as exc:
        yield sse(error_body(exc.status, exc.message, exc.param))
    except Exception as exc:  # never a broken stream without a reason
        logger.exception("error while streaming %s", job.id)
        yield sse(error_body(500, f"internal error ({type(exc).__name__}); see the server log"))
    yield SSE_DONE
