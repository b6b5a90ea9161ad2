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
    #: every step through :meth:`pad` (not only uniform decode), uploads whole padded
    #: buffers (``[num_reqs]`` rows of a block table whose width never changes, not a
    #: ``[real_reqs, max_blocks]`` slice), computes logits and samples for all padded
    #: request rows (discarding padding rows on the host), and passes no per-step Python
    #: number into the traced step except through tensors. Default False: the runner
    #: may use exact, unpadded shapes outside captured steps.
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
