"""Shared helpers for the engine tests: build an engine on the fake runner and drive it."""

from __future__ import annotations

from dataclasses import dataclass, field

from plinth.config import CacheConfig, EngineConfig, SchedulerConfig
from plinth.engine import Engine
from plinth.testing.fake_runner import FakeRunner


@dataclass
class Result:
    tokens: dict[str, list[int]] = field(default_factory=dict)  # request id → all output tokens
    finish: dict[str, str] = field(default_factory=dict)  # request id → finish reason
    stop_reason: dict[str, int | None] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)  # request id → num_cached_tokens
    steps: int = 0

    def record(self, outputs) -> None:
        for out in outputs:
            assert out.request_id not in self.finish, f"output after {out.request_id!r} finished"
            self.tokens.setdefault(out.request_id, []).extend(out.new_token_ids)
            self.cached[out.request_id] = out.num_cached_tokens
            if out.finish_reason is not None:
                self.finish[out.request_id] = out.finish_reason
                self.stop_reason[out.request_id] = out.stop_reason


def make_engine(num_blocks: int = 64, block_size: int = 4, *, prefix_caching: bool = True,
                token_fn=None, **scheduler) -> Engine:
    config = EngineConfig(cache=CacheConfig(block_size=block_size, enable_prefix_caching=prefix_caching),
                          scheduler=SchedulerConfig(**scheduler))
    return Engine(config, FakeRunner(num_blocks, block_size, token_fn=token_fn))


def drive(engine: Engine, max_steps: int = 10_000, result: Result | None = None, on_step=None) -> Result:
    """Step until nothing is unfinished (or fail after ``max_steps``)."""
    result = result or Result()
    while engine.has_unfinished_requests():
        assert result.steps < max_steps, f"not finished after {max_steps} steps: {engine.scheduler.requests}"
        result.record(engine.step())
        result.steps += 1
        if on_step is not None:
            on_step(engine, engine.executor.last_scheduler_output)
    return result
