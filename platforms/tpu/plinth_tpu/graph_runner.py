"""XLA compilation as plinth's graph capture: pad to buckets, compile each bucket once.

XLA traces a step lazily and compiles one program per distinct graph (ops + shapes). The
runner pads every batch to a token bucket (a short power-of-two ladder) and to a fixed
request count, cuts the lazy graph before and after the model step (``torch_xla.sync``) so
that the compiled step depends only on the bucket, and precompiles every bucket at
:meth:`capture` with a progress bar, reporting how many XLA compilations that took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch_xla
import torch_xla.debug.metrics as met
from tqdm import tqdm

from plinth.platform import BatchDescriptor, GraphRunner
from plinth.platform.graph import StepFn
from plinth_tpu.buckets import bucket

logger = logging.getLogger(__name__)


def compile_count() -> int:
    """XLA compilations so far in this process (torch_xla's ``CompileTime`` metric)."""
    data = met.metric_data("CompileTime")
    return int(data[0]) if data else 0


class XlaGraphRunner(GraphRunner):
    """``token_buckets``: ascending padded token counts; ``max_reqs``: the padded request count."""

    mode = "compiled"
    static_shapes = True

    def __init__(self, token_buckets: Sequence[int], max_reqs: int, progress: bool = True) -> None:
        if not token_buckets:
            raise ValueError("XlaGraphRunner needs at least one token bucket")
        self.token_buckets = tuple(sorted(set(token_buckets)))
        self.max_reqs = max_reqs
        self.progress = progress
        self._compiled: set[BatchDescriptor] = set()
        self.compiles_at_capture = 0
        self.capture_seconds = 0.0

    def pad(self, descriptor: BatchDescriptor) -> BatchDescriptor:
        tokens = bucket(descriptor.num_tokens, self.token_buckets) or descriptor.num_tokens
        reqs = max(self.max_reqs, descriptor.num_reqs)
        return BatchDescriptor(tokens, reqs, descriptor.uniform_decode)

    def capture(self, fn: StepFn, descriptors: Sequence[BatchDescriptor]) -> None:
        """Compile the step for every token bucket (the uniform-decode flag does not change the
        program: shapes alone do), plus whatever ``descriptors`` pad to."""
        wanted = {self.pad(BatchDescriptor(t, 1, False)) for t in self.token_buckets}
        wanted |= {BatchDescriptor(d.num_tokens, d.num_reqs, False) for d in map(self.pad, descriptors)}
        ordered = sorted(wanted, key=lambda d: (d.num_tokens, d.num_reqs))
        before, start = compile_count(), time.perf_counter()
        bar = tqdm(ordered, desc="XLA: compiling step buckets", unit="bucket", disable=not self.progress)
        for descriptor in bar:
            bar.set_postfix(tokens=descriptor.num_tokens, compiles=compile_count() - before)
            self._step(fn, descriptor)
            self._compiled.add(descriptor)
        self.compiles_at_capture += compile_count() - before
        self.capture_seconds += time.perf_counter() - start
        logger.info("XLA: precompiled %d step buckets (tokens %s, %d requests) with %d compilations in %.1f s",
                    len(ordered), ", ".join(str(d.num_tokens) for d in ordered), self.max_reqs,
                    self.compiles_at_capture, self.capture_seconds)

    def run(self, fn: StepFn, descriptor: BatchDescriptor) -> Any:
        return self._step(fn, descriptor)

    @staticmethod
    def _step(fn: StepFn, descriptor: BatchDescriptor) -> Any:
        # torch-xla cannot slice persistent buffers in inference mode once they were synced
        # (see TpuPlatform.inference_mode): the step itself always runs under no_grad.
        with torch.inference_mode(False), torch.no_grad():
            torch_xla.sync()  # inputs copied in this step become device data, not part of the step's graph
            output = fn(descriptor)
            torch_xla.sync()  # the step's graph ends here: sampling compiles (and caches) separately
        return output

    def captured(self) -> tuple[BatchDescriptor, ...]:
        return tuple(sorted(self._compiled, key=lambda d: d.num_tokens))
