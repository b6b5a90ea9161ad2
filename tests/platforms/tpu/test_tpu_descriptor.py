"""TPU platform pieces that need no torch-xla: descriptor, probe reasons, bucket ladders."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from plinth_tpu import descriptor
from plinth_tpu.buckets import bucket, ladder


def test_descriptor_imports_without_torch():
    code = "import sys, plinth_tpu.descriptor as d; assert 'torch' not in sys.modules; print(d.DESCRIPTOR.name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "tpu"


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla is installed here")
def test_probe_without_torch_xla_says_how_to_install():
    probe = descriptor.probe()
    assert not probe.available and "torch-xla==2.9.0" in probe.reason


def test_probe_needs_a_pjrt_device(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "torch_xla" else (
        None if name == "libtpu" else real(name)))
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    probe = descriptor.probe()
    assert not probe.available and "PJRT_DEVICE=CPU" in probe.reason


def test_ladder_and_bucket():
    assert ladder(512) == (8, 16, 32, 64, 128, 256, 512)
    assert ladder(100) == (8, 16, 32, 64, 100)
    assert ladder(4) == (4,)
    assert bucket(9, ladder(100)) == 16 and bucket(100, ladder(100)) == 100 and bucket(101, ladder(100)) is None
    with pytest.raises(ValueError, match="positive"):
        ladder(0)
