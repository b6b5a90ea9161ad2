"""The cuda platform's step limits where the user sets none: vLLM's offline defaults by device (a faked device)."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("plinth_cuda") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("plinth-platform-cuda is not installed", allow_module_level=True)

GIB = 2**30


class FakeDevice:
    def __init__(self, name, memory_gib, capability):
        self.name, self.memory, self.capability = name, int(memory_gib * GIB), capability

    def compute_capability(self):
        return self.capability

    def multiprocessor_count(self):
        return 132

    def device_name(self):
        return self.name

    def total_memory(self):
        return self.memory


@pytest.mark.parametrize("name,memory_gib,capability,expected", [
    ("NVIDIA H100 80GB HBM3", 79.2, (9, 0), (1024, 16384)),
    ("NVIDIA H200", 139.8, (9, 0), (1024, 16384)),
    ("NVIDIA A100-SXM4-80GB", 79.2, (8, 0), (256, 8192)),  # vLLM keeps the A100 at the small defaults
    ("NVIDIA GeForce RTX 4090", 23.6, (8, 9), (256, 8192)),
    ("NVIDIA L40S", 44.4, (8, 9), (256, 8192)),
])
def test_large_gpus_take_vllms_offline_defaults(name, memory_gib, capability, expected):
    from plinth_cuda.platform import CudaPlatform

    from plinth.engine.engine_args import EngineArgs

    platform = object.__new__(CudaPlatform)
    platform._device = FakeDevice(name, memory_gib, capability)
    caps = platform.capabilities
    sched = EngineArgs().engine_config(4096, caps.default_max_num_seqs, caps.default_max_num_batched_tokens).scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == expected
    sched = EngineArgs(max_num_seqs=32, max_num_batched_tokens=2048).engine_config(
        4096, caps.default_max_num_seqs, caps.default_max_num_batched_tokens).scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == (32, 2048)
