"""The contract package is cheap: importing it (and a descriptor) must not import torch."""

from __future__ import annotations

import subprocess
import sys


def test_contract_and_descriptors_import_without_torch():
    code = ("import sys, plinth.platform, plinth.platform.discovery, plinth_cpu.descriptor; "
            "plinth_cpu.descriptor.DESCRIPTOR.probe(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
