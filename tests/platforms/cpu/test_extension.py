"""Loading the C++ kernels: ISA choice, the env switch, and fallback when they are missing."""

from __future__ import annotations

import pytest

from plinth.platform import Op
from plinth_cpu import platform as cpu_platform
from plinth_cpu.extension import ENV, ExtensionStatus, load_extension


def test_reference_switch_turns_the_kernels_off():
    status = load_extension("reference")
    assert status.module is None and ENV in status.describe


def test_missing_extension_falls_back_with_a_reason():
    status = load_extension("auto", module_name="plinth_cpu._no_such_extension")
    assert status.module is None
    assert "C++ kernels unavailable" in status.reason and "pip install" in status.reason


def test_unknown_isa_falls_back_to_the_best_path():
    status = load_extension("sse9")
    if status.module is None:
        pytest.skip(status.reason)
    assert status.isa == status.module.available_isas()[0] and "not available" in status.reason


def test_forcing_portable_is_always_possible():
    status = load_extension("portable")
    if status.module is None:
        pytest.skip(status.reason)
    assert status.module.isa() == "portable"
    load_extension("auto")
    with pytest.raises(ValueError, match="available"):
        status.module.set_isa("no-such-isa")


def test_platform_without_extension_uses_reference(monkeypatch):
    monkeypatch.setattr(cpu_platform, "extension",
                        lambda: ExtensionStatus(None, "reference", "C++ kernels unavailable: simulated"))
    platform = cpu_platform.CpuPlatform()
    assert platform.kernels().implementations(Op.RMS_NORM) == []
    assert "simulated" in platform.capabilities.info["kernels"]
    assert [b.name for b in platform.attention_backends()] == ["cpu_sdpa", "reference"]


def test_platform_with_extension_registers_kernels():
    status = load_extension("auto")
    if status.module is None:
        pytest.skip(status.reason)
    platform = cpu_platform.CpuPlatform()
    impls = platform.kernels().implementations(Op.RMS_NORM)
    assert impls and impls[0].name.startswith("csrc-")
    assert platform.attention_backends()[0].name == "cpu_csrc"
