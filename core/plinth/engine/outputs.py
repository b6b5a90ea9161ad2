"""The engine's per-request step output (defined beside the scheduler, which produces it)."""

from plinth.sched.outputs import EngineOutput, SchedulerStats

__all__ = ["EngineOutput", "SchedulerStats"]
