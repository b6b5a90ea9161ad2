"""Messages between the HTTP process and the engine-core process: msgspec structs as msgpack.

The channel is a local ``multiprocessing`` pipe (``send_bytes``/``recv_bytes``); nothing on it
is ever unpickled. Start-up arguments travel msgspec-encoded too.
"""

from __future__ import annotations

import msgspec

from plinth.engine.engine_args import EngineArgs
from plinth.sampling_params import SamplingParams


# -- HTTP process -> engine core -------------------------------------------------
class AddRequest(msgspec.Struct, tag=True, array_like=True):
    request_id: str  # unique per engine request (one prompt of an HTTP request)
    prompt_token_ids: list[int]  # already tokenized and length-checked
    params: SamplingParams  # output_kind is DELTA: the core sends only what is new
    priority: int = 0


class Abort(msgspec.Struct, tag=True, array_like=True):
    request_ids: list[str]


class Shutdown(msgspec.Struct, tag=True, array_like=True):
    pass


ToCore = AddRequest | Abort | Shutdown


# -- engine core -> HTTP process -------------------------------------------------
class Ready(msgspec.Struct, tag=True, array_like=True):
    max_model_len: int  # the context after KV-cache sizing
    platform: str  # the platform the engine runs on
    vocab_size: int


class TokenLogprobs(msgspec.Struct, array_like=True):
    """One generated position: the sampled token first, then the top-k by rank."""

    token_ids: list[int]
    logprobs: list[float]
    ranks: list[int]
    texts: list[str]


class CompletionDelta(msgspec.Struct, array_like=True):
    index: int  # which of the request's n completions
    text: str  # new text since the last delta
    token_ids: list[int]  # new token ids since the last delta
    logprobs: list[TokenLogprobs] | None
    finish_reason: str | None
    stop_reason: int | str | None


class RequestDelta(msgspec.Struct, array_like=True):
    request_id: str
    completions: list[CompletionDelta]
    finished: bool
    num_cached_tokens: int
    queue_time: float | None  # seconds from arrival to first scheduling, on the first delta that knows it
    prompt_logprobs: list[TokenLogprobs | None] | None = None  # once, when asked: per prompt token (first None)


class Stats(msgspec.Struct, array_like=True):
    num_running: int
    num_waiting: int
    kv_cache_usage: float
    prefix_cache_queries: int  # cumulative
    prefix_cache_hits: int  # cumulative
    num_preemptions: int  # cumulative


class Outputs(msgspec.Struct, tag=True, array_like=True):
    deltas: list[RequestDelta]
    stats: Stats | None


class RequestFailed(msgspec.Struct, tag=True, array_like=True):
    request_id: str
    message: str  # why the engine refused it (a client error: 400)


class Fatal(msgspec.Struct, tag=True, array_like=True):
    message: str  # the engine cannot continue; the core exits after sending this


FromCore = Ready | Outputs | RequestFailed | Fatal

to_core_encoder = msgspec.msgpack.Encoder()
to_core_decoder = msgspec.msgpack.Decoder(ToCore)
from_core_encoder = msgspec.msgpack.Encoder()
from_core_decoder = msgspec.msgpack.Decoder(FromCore)


def encode_engine_args(args: EngineArgs) -> bytes:
    return msgspec.msgpack.encode(args)


def decode_engine_args(data: bytes) -> EngineArgs:
    return msgspec.msgpack.decode(data, type=EngineArgs)
