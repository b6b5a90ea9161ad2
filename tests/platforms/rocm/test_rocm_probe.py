"""ROCm without AMD hardware: probe logic in simulated environments, config patch, shared kernels."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from plinth_rocm import descriptor
from plinth_rocm.config import CAPTURE_SIZES, rocm_batch_defaults, rocm_config_patch

from plinth.config import EngineConfig
from plinth.engine.engine_args import EngineArgs
from plinth.platform import StreamGraphRunner
from plinth.platform.configure import apply_config_patch

BLOCKS = (16, 32, 64, 128, 256)


def test_descriptor_imports_without_torch():
    code = "import sys, plinth_rocm.descriptor as d; assert 'torch' not in sys.modules; print(d.DESCRIPTOR.name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "rocm"


def test_probe_here_says_why_not():
    probe = descriptor.probe()
    assert not probe.available and "ROCm build" in probe.reason and "rocm6" in probe.reason


def test_probe_rocm_torch_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.4.0", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    probe = descriptor.probe()
    assert not probe.available and "HIP 6.4.0" in probe.reason and "/dev/kfd" in probe.reason


def test_probe_simulated_mi300x(monkeypatch):
    props = SimpleNamespace(name="AMD Instinct MI300X", gcnArchName="gfx942:sramecc+:xnack-",
                            total_memory=192 * 2**30)
    monkeypatch.setattr(torch.version, "hip", "6.4.0", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    probe = descriptor.probe()
    assert probe.available and "8 x AMD Instinct MI300X (gfx942)" in probe.reason and "192.0 GiB" in probe.reason


def test_probe_never_raises(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.4.0", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: 1 / 0)
    probe = descriptor.probe()
    assert not probe.available and "ZeroDivisionError" in probe.reason


@pytest.mark.parametrize("arch", ["gfx942", "gfx90a"])
def test_config_patch(arch):
    config = EngineConfig().with_section("cache", block_size=48)
    patched = apply_config_patch(config, rocm_config_patch(config, arch, BLOCKS), "rocm")
    assert patched.cache.block_size == 16 and patched.graph.mode == "hip_graph"
    assert patched.graph.capture_sizes == tuple(sorted(CAPTURE_SIZES[:CAPTURE_SIZES.index(256) + 1], reverse=True))
    assert patched.scheduler == config.scheduler  # step limits are defaults (Capabilities), never overrides


@pytest.mark.parametrize("arch,expected", [("gfx942", (1024, 16384)), ("gfx950", (1024, 16384)),
                                           ("gfx90a", (256, 8192))])
def test_batch_defaults_apply_only_where_the_user_set_none(arch, expected):
    defaults = rocm_batch_defaults(arch)
    sched = EngineArgs().engine_config(2048, *defaults).scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == expected
    sched = EngineArgs(max_num_seqs=64, max_num_batched_tokens=4096).engine_config(2048, *defaults).scheduler
    assert (sched.max_num_seqs, sched.max_num_batched_tokens) == (64, 4096)


def test_config_refuses_unknown_graph_mode():
    config = EngineConfig().with_section("graph", mode="cuda_graph")
    assert "hip_graph" in rocm_config_patch(config, "gfx942", BLOCKS).errors[0]


def test_graph_runner_is_the_shared_one():
    fake = SimpleNamespace(graph=None, graph_pool_handle=None, synchronize=None)
    runner = StreamGraphRunner(fake, object, mode="hip_graph")
    assert runner.mode == "hip_graph" and runner.captured() == ()
    with pytest.raises(TypeError, match="eager"):
        StreamGraphRunner(SimpleNamespace(), object, mode="hip_graph")


def test_shared_kernels_register_for_hip_device_type():
    pytest.importorskip("triton")
    sys.path.insert(0, str(descriptor.__file__).rsplit("/platforms/", 1)[0] + "/platforms/triton-kernels")
    from plinth_triton import register_kernels

    from plinth.platform import KernelRegistry, Op

    registry = KernelRegistry()
    register_kernels(registry, device_types=("cuda",))
    assert registry.implementations(Op.RMS_NORM)[0].name == "triton.rms_norm"
