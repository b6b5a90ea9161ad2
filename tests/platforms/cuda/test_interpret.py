"""The Triton kernels' logic on CPU tensors through TRITON_INTERPRET=1 (runs in CI, no GPU)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_kernels_under_the_triton_interpreter():
    paths = [str(ROOT / "core"), str(ROOT / "platforms" / "triton-kernels"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "TRITON_INTERPRET": "1"}
    script = Path(__file__).with_name("interpret_checks.py")
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"interpreter checks failed:\n{done.stdout}\n{done.stderr[-4000:]}"
