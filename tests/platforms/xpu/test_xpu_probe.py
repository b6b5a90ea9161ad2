"""XPU without Intel hardware: probe logic in simulated environments, graph/xccl detection, config patch."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from plinth_xpu import descriptor
from plinth_xpu.config import graph_modes, has_ipex, has_xccl, has_xpu_graphs, xpu_config_patch

from plinth.config import EngineConfig
from plinth.platform.configure import apply_config_patch

BLOCKS = (16, 32, 64, 128, 256)


def test_descriptor_imports_without_torch():
    code = "import sys, plinth_xpu.descriptor as d; assert 'torch' not in sys.modules; print(d.DESCRIPTOR.name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "xpu"


def test_probe_here_says_why_not():
    probe = descriptor.probe()
    assert not probe.available and "no Intel GPU" in probe.reason


def test_probe_old_torch(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.4.1+cpu")
    probe = descriptor.probe()
    assert not probe.available and ">= 2.5" in probe.reason


def test_probe_simulated_max_1550(monkeypatch):
    props = SimpleNamespace(name="Intel(R) Data Center GPU Max 1550", total_memory=128 * 2**30)
    monkeypatch.setattr(torch.xpu, "is_available", lambda: True)
    monkeypatch.setattr(torch.xpu, "device_count", lambda: 2)
    monkeypatch.setattr(torch.xpu, "get_device_properties", lambda i: props)
    probe = descriptor.probe()
    assert probe.available and "2 x Intel(R) Data Center GPU Max 1550" in probe.reason


def test_probe_never_raises(monkeypatch):
    monkeypatch.setattr(torch.xpu, "is_available", lambda: 1 / 0)
    assert "ZeroDivisionError" in descriptor.probe().reason


def test_graphs_and_xccl_follow_what_torch_offers():
    assert has_xpu_graphs(torch.xpu) == hasattr(torch.xpu, "XPUGraph")
    assert graph_modes(SimpleNamespace()) == ("eager",)
    assert graph_modes(SimpleNamespace(XPUGraph=1, graph=1, graph_pool_handle=1)) == ("xpu_graph", "eager")
    assert has_xccl(SimpleNamespace(is_xccl_available=lambda: True))
    assert not has_xccl(SimpleNamespace())
    assert isinstance(has_ipex(), bool)


def test_config_patch_with_and_without_graphs():
    config = EngineConfig().with_section("cache", block_size=1)
    with_graphs = apply_config_patch(config, xpu_config_patch(config, ("xpu_graph", "eager"), BLOCKS), "xpu")
    assert with_graphs.cache.block_size == 16 and with_graphs.graph.mode == "xpu_graph"
    assert with_graphs.graph.capture_sizes[0] == 256
    eager = apply_config_patch(config, xpu_config_patch(config, ("eager",), BLOCKS), "xpu")
    assert eager.graph.mode == "eager" and eager.graph.capture_sizes == ()
    refused = xpu_config_patch(EngineConfig().with_section("graph", mode="xpu_graph"), ("eager",), BLOCKS)
    assert "XPUGraph" in refused.errors[0]


@pytest.mark.parametrize("version,expected", [("2.9.0+xpu", (2, 9)), ("2.13.0", (2, 13))])
def test_version_parse(version, expected):
    assert descriptor.torch_version_tuple(version) == expected
