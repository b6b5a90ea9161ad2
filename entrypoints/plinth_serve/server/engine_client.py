"""The HTTP process's side of the engine: start the core, send requests, route deltas to streams."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from plinth_serve.server import ipc
from plinth_serve.server.errors import APIError, EngineDeadError, bad_request
from plinth_serve.server.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from plinth.engine.engine_args import EngineArgs
    from plinth.sampling_params import SamplingParams
    from plinth_serve.server.metrics import ServerMetrics

logger = logging.getLogger(__name__)
_DEAD = object()  # queue sentinel: the engine died
_SHUTDOWN = object()  # queue sentinel: aborted by a shutdown


class EngineStartError(RuntimeError):
    """The engine core could not start; the message says why."""


class EngineClient:
    """Owns the pipe to the engine core. Call ``attach()`` from the event loop before ``generate``."""

    def __init__(self, conn: Connection, process: Any = None, limits: Limits = DEFAULT_LIMITS) -> None:
        self.conn, self.process, self.limits = conn, process, limits
        self.ready: ipc.Ready | None = None
        self.dead_message: str | None = None
        self.metrics: ServerMetrics | None = None
        self.on_dead: Callable[[str], None] | None = None
        self._streams: dict[str, asyncio.Queue] = {}
        self._queued: dict[str, tuple[int, int]] = {}  # request id -> (n, prompt tokens x n) until its first delta
        self._queued_seqs = self._queued_tokens = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_lock = threading.Lock()

    # -- start-up --------------------------------------------------------------
    @classmethod
    def spawn(cls, engine_args: EngineArgs, *, log_level: str = "WARNING", limits: Limits = DEFAULT_LIMITS,
              start_timeout: float = 900.0) -> EngineClient:
        """Start the engine-core process (spawn) and wait until it reports Ready."""
        from plinth_serve.server.engine_core import engine_core_main

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=engine_core_main, name="plinth-engine-core", daemon=True,
                              args=(child, ipc.encode_engine_args(engine_args), log_level))
        process.start()
        child.close()
        client = cls(parent, process, limits)
        client.wait_ready(start_timeout)
        return client

    @classmethod
    def in_thread(cls, engine: Any, limits: Limits = DEFAULT_LIMITS) -> EngineClient:
        """The same protocol with the core loop in a thread of this process (tests, fake engines)."""
        from plinth_serve.server.engine_core import serve_engine

        parent, child = multiprocessing.Pipe(duplex=True)
        threading.Thread(target=serve_engine, args=(child, engine), name="plinth-engine-core", daemon=True).start()
        client = cls(parent, None, limits)
        client.wait_ready(60.0)
        return client

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.conn.poll(0.2):
                try:
                    msg = ipc.from_core_decoder.decode(self.conn.recv_bytes())
                except EOFError:
                    break
                if isinstance(msg, ipc.Ready):
                    self.ready = msg
                    return
                if isinstance(msg, ipc.Fatal):
                    raise EngineStartError(msg.message)
            elif self.process is not None and not self.process.is_alive():
                break
        code = None if self.process is None else self.process.exitcode
        raise EngineStartError(f"the engine process did not become ready (exit code {code}); see its log above")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        threading.Thread(target=self._read_loop, name="plinth-engine-reader", daemon=True).start()

    @property
    def max_model_len(self) -> int:
        return self.ready.max_model_len if self.ready else 0

    @property
    def is_dead(self) -> bool:
        return self.dead_message is not None

    @property
    def num_in_flight(self) -> int:
        return len(self._streams)

    # -- requests --------------------------------------------------------------
    def submit(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams,
               priority: int = 0) -> AsyncIterator[ipc.RequestDelta]:
        """Queue one engine request now (503 when the queue is full); returns its stream of deltas.

        Iterate the stream to the end, or call ``cancel(request_id)``: leaving the stream early
        aborts the request in the engine, which frees its KV blocks.
        """
        if self.is_dead:
            raise EngineDeadError(self.dead_message or "the engine process has died")
        self._admit(request_id, params.n, len(prompt_token_ids) * params.n)
        queue: asyncio.Queue = asyncio.Queue()
        self._streams[request_id] = queue
        try:
            self._send(ipc.AddRequest(request_id, prompt_token_ids, params, priority))
        except BaseException:
            self._forget(request_id)
            raise
        tracker = self.metrics.tracker(len(prompt_token_ids) * params.n) if self.metrics else None
        return self._stream(request_id, queue, tracker)

    async def _stream(self, request_id: str, queue: asyncio.Queue, tracker: Any) -> AsyncIterator[ipc.RequestDelta]:
        finished = False
        try:
            while not finished:
                item = await queue.get()
                if item is _DEAD:
                    raise EngineDeadError(self.dead_message or "the engine process has died")
                if item is _SHUTDOWN:
                    raise APIError(503, "the server is shutting down; the request was aborted")
                if isinstance(item, ipc.RequestFailed):
                    finished = True
                    raise bad_request(item.message)
                self._release(request_id)
                finished = item.finished
                if tracker is not None:
                    tracker.on_delta(item)
                yield item
        finally:
            self._forget(request_id)
            if not finished:
                self.abort([request_id])

    def cancel(self, request_id: str) -> None:
        """Abort a submitted request whose stream will not be iterated."""
        if request_id in self._streams:
            self._forget(request_id)
            self.abort([request_id])

    def _forget(self, request_id: str) -> None:
        self._streams.pop(request_id, None)
        self._release(request_id)

    def abort(self, request_ids: list[str]) -> None:
        if request_ids and not self.is_dead:
            try:
                self._send(ipc.Abort(request_ids))
            except EngineDeadError:
                pass

    def abort_all(self) -> None:
        """Abort every request in flight; their streams end with a 503 (shutdown)."""
        self.abort(list(self._streams))
        for queue in self._streams.values():
            queue.put_nowait(_SHUTDOWN)

    def _admit(self, request_id: str, n: int, cost: int) -> None:
        lim = self.limits
        if self._queued_seqs + n > lim.max_queued_requests or self._queued_tokens + cost > lim.max_queued_prompt_tokens:
            raise APIError(503, f"the server's queue is full ({self._queued_seqs} sequences, {self._queued_tokens} "
                                "prompt tokens waiting); retry later")
        self._queued[request_id] = (n, cost)
        self._queued_seqs += n
        self._queued_tokens += cost

    def _release(self, request_id: str) -> None:
        n, cost = self._queued.pop(request_id, (0, 0))
        self._queued_seqs -= n
        self._queued_tokens -= cost

    def _send(self, msg: Any) -> None:
        try:
            with self._send_lock:
                self.conn.send_bytes(ipc.to_core_encoder.encode(msg))
        except (OSError, ValueError) as exc:
            self._die(f"the engine process is gone ({type(exc).__name__})")
            raise EngineDeadError() from None

    # -- the reader thread -----------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError):
                code = None if self.process is None else self.process.exitcode
                self._call_soon(self._die, f"the engine process exited unexpectedly (exit code {code})")
                return
            msg = ipc.from_core_decoder.decode(data)
            if isinstance(msg, ipc.Fatal):
                self._call_soon(self._die, msg.message)
                return
            self._call_soon(self._dispatch, msg)

    def _call_soon(self, fn: Callable, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, ipc.Outputs):
            if msg.stats is not None and self.metrics is not None:
                self.metrics.on_stats(msg.stats)
            for delta in msg.deltas:
                queue = self._streams.get(delta.request_id)
                if queue is not None:
                    queue.put_nowait(delta)
        elif isinstance(msg, ipc.RequestFailed):
            queue = self._streams.get(msg.request_id)
            if queue is not None:
                queue.put_nowait(msg)

    def _die(self, message: str) -> None:
        if self.is_dead:
            return
        logger.error("engine core died: %s", message)
        self.dead_message = message
        for queue in self._streams.values():
            queue.put_nowait(_DEAD)
        if self.on_dead is not None:
            self.on_dead(message)

    def shutdown(self, timeout: float = 10.0) -> None:
        if not self.is_dead:
            try:
                with self._send_lock:
                    self.conn.send_bytes(ipc.to_core_encoder.encode(ipc.Shutdown()))
            except (OSError, ValueError):
                pass
        self.dead_message = self.dead_message or "the server is shutting down"
        if self.process is not None:
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5)
