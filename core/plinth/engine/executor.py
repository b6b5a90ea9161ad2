"""What the engine needs from whatever runs the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from plinth.sched.outputs import RunnerOutput, SchedulerOutput


@runtime_checkable
class Executor(Protocol):
    """Runs the model for one step; owns the KV cache tensors and the per-request device state."""

    num_kv_blocks: int  # blocks in the KV cache it allocated; the scheduler's pool has exactly these

    def execute(self, scheduler_output: SchedulerOutput) -> RunnerOutput:
        """Run one step as planned (see ``plinth.sched.outputs`` for the rules) and return the samples."""
        ...
