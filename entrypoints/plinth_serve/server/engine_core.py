"""The engine-core process: receives requests over the pipe, runs ``LLMEngine.step()``, sends deltas.

``serve_engine`` is the loop; it works on any object with LLMEngine's methods, so tests can
run it in a thread with a fake engine. ``engine_core_main`` is the process entry point.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from plinth_serve.server import ipc

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from plinth.outputs import CompletionOutput, RequestOutput

logger = logging.getLogger(__name__)
_IDLE_POLL_S = 1.0


def engine_core_main(conn: Connection, engine_args: bytes, log_level: str = "WARNING") -> None:
    """Process entry: build the LLMEngine from msgspec-encoded EngineArgs, then serve the pipe."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s engine-core %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the HTTP process decides when we stop
    try:
        from plinth.engine.heap import freeze_heap
        from plinth.engine.llm_engine import LLMEngine

        args = ipc.decode_engine_args(engine_args)
        engine = LLMEngine(args)
        freeze_heap()
    except Exception as exc:  # report why start-up failed, then exit
        logger.exception("engine start-up failed")
        _send(conn, ipc.Fatal(f"engine start-up failed: {type(exc).__name__}: {exc}"))
        os._exit(1)
    serve_engine(conn, engine)


def serve_engine(conn: Connection, engine: Any) -> None:
    """Run until Shutdown or the HTTP process goes away; a step that raises is fatal."""
    core = _Core(conn, engine)
    _send(conn, ipc.Ready(max_model_len=engine.engine.max_model_len, platform=getattr(engine.platform, "name", "?"),
                          vocab_size=int(getattr(engine.model_config.hf_config, "vocab_size", 0) or 0)))
    try:
        core.run()
    except (EOFError, OSError):
        logger.info("the HTTP process closed the pipe; stopping")
    except Exception as exc:
        logger.exception("engine step failed")
        _send(conn, ipc.Fatal(f"engine step failed: {type(exc).__name__}: {exc}"))
        raise
    finally:
        if core.timing.steps:
            logger.info("engine core loop: %s", core.timing.report())


def _send(conn: Connection, msg: Any) -> None:
    try:
        conn.send_bytes(ipc.from_core_encoder.encode(msg))
    except (OSError, ValueError):
        pass


@dataclasses.dataclass
class LoopTiming:
    """Where the engine-core loop's host time went in one busy spell (logged at info when the spell ends)."""

    steps: int = 0
    inbox_s: float = 0.0  # receiving and adding requests, aborts
    step_s: float = 0.0  # LLMEngine.step()
    outputs_s: float = 0.0  # building the deltas and the stats
    send_s: float = 0.0  # encoding and writing them to the pipe (blocks while the HTTP process lags)
    start: float = 0.0  # the spell's first step

    def report(self) -> str:
        return (f"{self.steps} steps in {time.perf_counter() - self.start:.2f} s; inbox {self.inbox_s:.2f} s, "
                f"step {self.step_s:.2f} s, outputs {self.outputs_s:.2f} s, send {self.send_s:.2f} s")


class _Core:
    def __init__(self, conn: Connection, engine: Any) -> None:
        self.conn, self.engine = conn, engine
        self.timing = LoopTiming()
        self.arrivals: dict[str, float] = {}  # request id -> arrival, until first scheduled
        self.queue_times: dict[str, float] = {}  # request id -> seconds queued, until sent
        self.done: dict[str, set[int]] = {}  # request id -> completions (n > 1) already reported finished
        self.prompt_logprobs_sent: set[str] = set()  # requests whose prompt logprobs went out already
        self.last_stats: ipc.Stats | None = None
        self.running = True

    def run(self) -> None:
        timing, clock = self.timing, time.perf_counter
        while self.running:
            busy = self.engine.has_unfinished_requests()
            if not busy and timing.steps:  # a busy spell ended: say where its host time went
                logger.info("engine core loop: %s", timing.report())
                timing = self.timing = LoopTiming()
            t0 = clock()
            if self.conn.poll(0 if busy else _IDLE_POLL_S):
                t0 = clock()
                self._drain_inbox()
            t1 = clock()
            deltas = []
            if self.engine.has_unfinished_requests():
                step_start = time.monotonic()
                outputs = self.engine.step()
                t2 = clock()
                self._note_scheduled(step_start)
                deltas = [self._delta(out) for out in outputs]
                if not timing.steps:
                    timing.start = t0
                timing.steps += 1
                timing.inbox_s += t1 - t0
                timing.step_s += t2 - t1
                t1 = t2
            stats = self._stats()
            t3 = clock()
            if deltas or stats != self.last_stats:
                self.last_stats = stats
                _send(self.conn, ipc.Outputs(deltas, stats))
            if deltas:
                timing.outputs_s += t3 - t1
                timing.send_s += clock() - t3

    def _drain_inbox(self) -> None:
        while self.conn.poll(0):
            msg = ipc.to_core_decoder.decode(self.conn.recv_bytes())
            if isinstance(msg, ipc.AddRequest):
                self._add(msg)
            elif isinstance(msg, ipc.Abort):
                self.engine.abort_request(msg.request_ids)
                for rid in msg.request_ids:
                    self.arrivals.pop(rid, None)
                    self.queue_times.pop(rid, None)
                    self.done.pop(rid, None)
            else:
                self.running = False
                return

    def _add(self, msg: ipc.AddRequest) -> None:
        params = dataclasses.replace(msg.params, logits_processors=None)
        try:
            self.engine.add_request(msg.request_id, msg.prompt_token_ids, params, priority=msg.priority)
        except ValueError as exc:
            _send(self.conn, ipc.RequestFailed(msg.request_id, str(exc)))
            return
        self.arrivals[msg.request_id] = time.monotonic()

    def _note_scheduled(self, step_start: float) -> None:
        """Move requests the scheduler has admitted (their prefix-cache lookup is done) to queue_times."""
        if not self.arrivals:
            return
        sched = getattr(getattr(self.engine, "engine", None), "scheduler", None)
        requests = getattr(sched, "requests", {})
        for rid, arrival in list(self.arrivals.items()):
            req = requests.get(rid) or requests.get(f"0_{rid}")
            if req is None or getattr(req, "num_cached_tokens", 0) >= 0:
                self.queue_times[rid] = max(0.0, step_start - arrival)
                del self.arrivals[rid]

    def _queue_time(self, request_id: str) -> float | None:
        return self.queue_times.pop(request_id, None)

    def _delta(self, out: RequestOutput) -> ipc.RequestDelta:
        """Only what is new: a sibling that finished in an earlier step is left out."""
        done = self.done.setdefault(out.request_id, set())
        completions = [_completion(c) for c in out.outputs if c.index not in done]
        done.update(c.index for c in completions if c.finish_reason is not None)
        if out.finished:
            del self.done[out.request_id]
        prompt_logprobs = None
        if out.prompt_logprobs is not None and out.request_id not in self.prompt_logprobs_sent:
            self.prompt_logprobs_sent.add(out.request_id)
            prompt_logprobs = [None if e is None else _token_logprobs(e) for e in out.prompt_logprobs]
        if out.finished:
            self.prompt_logprobs_sent.discard(out.request_id)
        return ipc.RequestDelta(out.request_id, completions, out.finished, out.num_cached_tokens,
                                self._queue_time(out.request_id), prompt_logprobs)

    def _stats(self) -> ipc.Stats:
        s = self.engine.engine.stats()
        return ipc.Stats(s.num_running_reqs, s.num_waiting_reqs, float(s.kv_cache_usage), s.prefix_cache_queries,
                         s.prefix_cache_hits, s.num_preemptions)


def _token_logprobs(entry) -> ipc.TokenLogprobs:
    ids = list(entry)
    return ipc.TokenLogprobs(ids, [entry[i].logprob for i in ids], [entry[i].rank for i in ids],
                             [entry[i].decoded_token or "" for i in ids])


def _completion(c: CompletionOutput) -> ipc.CompletionDelta:
    logprobs = None if c.logprobs is None else [_token_logprobs(entry) for entry in c.logprobs]
    return ipc.CompletionDelta(c.index, c.text, list(c.token_ids), logprobs, c.finish_reason, c.stop_reason)
