"""Graph runner: capture over persistent buffers, refill, replay equals eager; pad never shrinks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plinth.config import EngineConfig
from plinth.platform import BatchDescriptor, GraphRunner
from plinth.platform.configure import apply_config_patch
from plinth.testing.conformance.tolerances import DTYPES, assert_close

HIDDEN = 64
CAPTURED = [BatchDescriptor(16, 16, True), BatchDescriptor(8, 8, True), BatchDescriptor(4, 4, True),
            BatchDescriptor(1, 1, True), BatchDescriptor(32, 4, False)]
BATCHES = [BatchDescriptor(3, 3, True), BatchDescriptor(8, 8, True), BatchDescriptor(1, 1, True),
           BatchDescriptor(20, 3, False), BatchDescriptor(64, 64, True), BatchDescriptor(9, 9, True)]


class ToyStep:
    """A row-wise two-layer MLP reading a persistent input buffer: the shape of a model step."""

    def __init__(self, device: torch.device, dtype: torch.dtype, max_tokens: int) -> None:
        gen = torch.Generator().manual_seed(5)
        self.w1 = (torch.randn(HIDDEN, 4 * HIDDEN, generator=gen) / 8).to(dtype).to(device)
        self.w2 = (torch.randn(4 * HIDDEN, HIDDEN, generator=gen) / 16).to(dtype).to(device)
        self.inputs = torch.zeros(max_tokens, HIDDEN, dtype=dtype, device=device)

    def __call__(self, descriptor: BatchDescriptor) -> torch.Tensor:
        return F.silu(self.inputs[: descriptor.num_tokens] @ self.w1) @ self.w2

    def eager(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.silu(inputs @ self.w1) @ self.w2


def _runner(platform) -> GraphRunner:
    config = EngineConfig()
    config = apply_config_patch(config, platform.configure(config), platform.name)
    runner = platform.graph_runner(config)
    assert isinstance(runner, GraphRunner), f"graph_runner returned {type(runner).__name__}"
    return runner


def test_pad_never_shrinks(plinth_platform):
    runner = _runner(plinth_platform)
    assert runner.mode in plinth_platform.capabilities.graph_modes, (
        f"graph runner mode {runner.mode!r} is not among declared graph_modes")
    step = ToyStep(plinth_platform.device.torch_device(), torch.float32, 64)
    with plinth_platform.inference_mode():
        runner.capture(step, CAPTURED)
    for batch in BATCHES:
        padded = runner.pad(batch)
        assert padded.num_tokens >= batch.num_tokens and padded.num_reqs >= batch.num_reqs, (
            f"pad({batch}) returned the smaller {padded}")
        assert batch.uniform_decode or not padded.uniform_decode, (
            f"pad({batch}) returned a uniform-decode descriptor for a mixed batch: {padded}")


def test_replay_equals_eager(plinth_platform):
    platform = plinth_platform
    dtype = platform.capabilities.default_dtype
    dtype = dtype if dtype in DTYPES else "float32"
    device = platform.device.torch_device()
    runner = _runner(platform)
    step = ToyStep(device, DTYPES[dtype], 64)
    gen = torch.Generator().manual_seed(17)
    with plinth_platform.inference_mode():
        runner.capture(step, CAPTURED)
        for batch in BATCHES + BATCHES[::-1]:  # each descriptor twice, with fresh inputs
            padded = runner.pad(batch)
            fresh = torch.randn(padded.num_tokens, HIDDEN, generator=gen).to(step.inputs.dtype)
            step.inputs[: padded.num_tokens].copy_(fresh.to(device))
            replayed = runner.run(step, padded)[: batch.num_tokens].clone()
            platform.device.synchronize()
            expected = step.eager(fresh[: batch.num_tokens].to(device))
            assert_close(replayed, expected, dtype, f"graph runner {runner.mode!r} replay of {padded} for {batch}")
