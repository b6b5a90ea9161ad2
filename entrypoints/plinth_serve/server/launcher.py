"""Start the engine core, load the tokenizer, run uvicorn; drain on SIGTERM, exit on engine death."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import uvicorn

from plinth_serve.server.app import build_app
from plinth_serve.server.engine_client import EngineClient
from plinth_serve.server.guard import key_digest
from plinth_serve.server.metrics import ServerMetrics
from plinth_serve.server.state import ServerState

if TYPE_CHECKING:
    from plinth_serve.server.args import ServerArgs

logger = logging.getLogger("plinth_serve")
_EXIT_GRACE_S = 2.0  # after engine death: time for in-flight requests to get their errors


def load_tokenizer(args: ServerArgs) -> Any:
    """The HF tokenizer, as the engine loads it (same source, no network); None with --skip-tokenizer-init."""
    if args.skip_tokenizer_init:
        return None
    from plinth.model.default_model import default_model_path
    from plinth.model.model_config import ModelConfig
    from plinth.model.tokenizer import load_tokenizer as core_load_tokenizer

    config = ModelConfig.from_source(args.model or default_model_path(), load_format=args.load_format,
                                     max_model_len=args.max_model_len, tokenizer=args.tokenizer)
    return core_load_tokenizer(config)


def build_state(args: ServerArgs, client: EngineClient, tokenizer: Any) -> ServerState:
    names = list(args.served_model_names) or [args.default_served_name()]
    state = ServerState(client=client, tokenizer=tokenizer, served_names=names, metrics=ServerMetrics(names[0]),
                        created=int(time.time()), limits=args.limits, chat_template=args.read_chat_template(),
                        api_key_digests=[key_digest(k) for k in args.api_keys])
    client.metrics = state.metrics
    return state


class PlinthServer(uvicorn.Server):
    """uvicorn, with SIGTERM/SIGINT meaning: refuse new work (503), drain, then abort and exit."""

    def __init__(self, config: uvicorn.Config, state: ServerState, shutdown_timeout: float) -> None:
        super().__init__(config)
        self.state, self.shutdown_timeout = state, shutdown_timeout
        self._drain_task: asyncio.Task | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._drain_task is not None or self.should_exit:
            self.force_exit = self.should_exit = True  # a second signal: stop now
            return
        loop = asyncio.get_event_loop()
        self._drain_task = asyncio.Future(loop=loop)  # a placeholder until the task starts
        loop.call_soon_threadsafe(self._start_drain, loop)

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drain_task = loop.create_task(self.drain())

    async def drain(self) -> None:
        state = self.state
        state.draining = True
        deadline = time.monotonic() + self.shutdown_timeout
        logger.warning("draining: %d request(s) in flight, up to %.0f s", state.client.num_in_flight,
                       self.shutdown_timeout)
        while state.client.num_in_flight and time.monotonic() < deadline and not state.client.is_dead:
            await asyncio.sleep(0.05)
        if state.client.num_in_flight:
            logger.warning("drain timed out: aborting %d request(s)", state.client.num_in_flight)
            state.client.abort_all()
            await asyncio.sleep(0.2)  # let the aborted streams send their errors
        self.should_exit = True


def serve(args: ServerArgs) -> int:
    """Run the server until SIGTERM/SIGINT or engine death; returns the exit code."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # the tokenizer loads while the engine starts
        tokenizer_future = pool.submit(load_tokenizer, args)
        client = EngineClient.spawn(args.engine_args(), log_level=args.log_level.upper(), limits=args.limits)
        tokenizer = tokenizer_future.result()
    state = build_state(args, client, tokenizer)
    app = build_app(state, list(args.allowed_origins) or None)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                            h11_max_incomplete_event_size=args.limits.max_header_bytes, timeout_graceful_shutdown=5)
    server = PlinthServer(config, state, args.shutdown_timeout)
    exit_code = 0

    def on_dead(message: str) -> None:
        nonlocal exit_code
        if args.exit_on_engine_death:
            logger.error("the engine process died (%s); shutting down", message)
            exit_code = 1
            asyncio.get_event_loop().call_later(_EXIT_GRACE_S, _stop, server)

    client.on_dead = on_dead
    logger.warning("plinth serving %s on http://%s:%d (max_model_len %d, platform %s, engine pid %d)",
                   state.model_name, args.host, args.port, state.max_model_len,
                   client.ready.platform if client.ready else "?", client.process.pid)
    try:
        server.run()
    finally:
        client.shutdown()
    return exit_code


def _stop(server: uvicorn.Server) -> None:
    server.should_exit = True

