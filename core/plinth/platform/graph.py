"""Graph runners: capture/replay of the model step, keyed by a core-owned batch descriptor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchDescriptor:
    """The shape of one step, as a graph key. Core pads a batch to a captured size."""

    num_tokens: int  # tokens in the flat batch (padded)
    num_reqs: int  # requests in the batch (padded)
    uniform_decode: bool  # every request has exactly one new token


StepFn = Callable[[BatchDescriptor], Any]
"""Runs the model on persistent input buffers sized for the descriptor; returns outputs."""


class GraphRunner(ABC):
    """Captures ``StepFn`` for some descriptors and replays them; runs the rest eagerly.

    ``StepFn`` must read its inputs from persistent buffers that the caller refills
    before each :meth:`run`; a replay returns the same (static) output tensors.
    """

    mode: str = "eager"

    #: (API 1.1) True when every step must have the exact shapes of a padded descriptor,
    #: as on XLA, where each new tensor shape compiles a new program. The runner then pads
    #: every step through :meth:`pad` (not only uniform decode; ``num_reqs`` must pad to the
    #: runner's request capacity), uploads its input buffers whole (the block table too, with
    #: its fixed width) and makes every view of them inside the step, so that a step runs the
    #: very function :meth:`capture` saw (the descriptor's padded sizes stand for the batch's
    #: lengths: no per-step Python number reaches the step except through tensors). The step
    #: returns ``(hidden, hidden rows of the padded requests)``; logits and sampling run on all
    #: padded request rows (padding rows' tokens are discarded on the host), and after
    #: :meth:`capture` the runner samples one dummy step greedily through :meth:`run` so
    #: that greedy sampling compiles at start-up too. Default False: the runner may use
    #: exact, unpadded shapes outside captured steps.
    static_shapes: bool = False

    @abstractmethod
    def capture(self, fn: StepFn, descriptors: Sequence[BatchDescriptor]) -> None:
        """Capture ``fn`` for each descriptor (largest first); called once at start-up."""

    @abstractmethod
    def pad(self, descriptor: BatchDescriptor) -> BatchDescriptor:
        """The captured descriptor this batch should be padded to, or itself if none fits.

        The result has ``num_tokens``/``num_reqs`` at least the input's; a batch that is
        not ``uniform_decode`` is never padded to a uniform-decode capture.
        """

    @abstractmethod
    def run(self, fn: StepFn, descriptor: BatchDescriptor) -> Any:
        """Replay the capture for ``descriptor`` if there is one, else call ``fn``."""

    def captured(self) -> tuple[BatchDescriptor, ...]:
        """Descriptors with a capture (for reports)."""
        return ()


class EagerGraphRunner(GraphRunner):
    """The default: no capture, every step runs eagerly."""

    mode = "eager"

    def capture(self, fn: StepFn, descriptors: Sequence[BatchDescriptor]) -> None:
        return None

    def pad(self, descriptor: BatchDescriptor) -> BatchDescriptor:
        return descriptor

    def run(self, fn: StepFn, descriptor: BatchDescriptor) -> Any:
        return fn(descriptor)
