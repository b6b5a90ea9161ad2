"""Where the cuda platform fuses SiLU-and-mul into the gate/up GEMM: sm_90+ with the plan's shared memory an SM,
unless ``PLINTH_TRITON_GATED_SILU=0`` (no GPU needed: the device is faked)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

if importlib.util.find_spec("plinth_cuda") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("plinth-platform-cuda is not installed", allow_module_level=True)


class FakeDevice:
    def __init__(self, capability, smem_kb):
        self.capability, self.smem = capability, smem_kb * 1024

    def compute_capability(self):
        return self.capability

    def shared_memory_per_sm(self):
        return self.smem

    def multiprocessor_count(self):
        return 132


def _platform(capability, smem_kb):
    from plinth_cuda.platform import CudaPlatform

    plat = object.__new__(CudaPlatform)
    plat._device = FakeDevice(capability, smem_kb)
    return plat


@pytest.mark.parametrize("capability,smem_kb,env,fused", [
    ((9, 0), 228, None, True),      # H100 / H200
    ((10, 0), 228, None, True),     # datacenter Blackwell
    ((12, 0), 100, None, False),    # consumer Blackwell: the plan's 176 KB do not fit
    ((8, 9), 100, None, False),     # Ada: no TMA descriptors for it
    ((9, 0), 228, "0", False),      # switched off
])
def test_gated_fusion_switch(monkeypatch, capability, smem_kb, env, fused):
    from plinth_cuda.platform import GATED_MIN_ROWS

    if env is None:
        monkeypatch.delenv("PLINTH_TRITON_GATED_SILU", raising=False)
    else:
        monkeypatch.setenv("PLINTH_TRITON_GATED_SILU", env)
    method = _platform(capability, smem_kb).quantization_methods()["unquantized"]
    assert method.gated_min_rows == (GATED_MIN_ROWS if fused else None)


@pytest.mark.parametrize("props,expected_kb", [
    (SimpleNamespace(major=9, shared_memory_per_multiprocessor=233472), 228),
    (SimpleNamespace(major=12, shared_memory_per_multiprocessor=102400), 100),
    (SimpleNamespace(major=9), 228),   # a torch without the field: by architecture
    (SimpleNamespace(major=12), 0),
])
def test_shared_memory_per_sm(monkeypatch, props, expected_kb):
    import torch
    from plinth_cuda.device import CudaDeviceOps

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index=0: props)
    assert CudaDeviceOps().shared_memory_per_sm() == expected_kb * 1024
