"""What the csrc kernel tests share: the extension and the ISA paths this CPU runs (the ``ops``
fixture in ``conftest.py`` runs a test once per path)."""

from __future__ import annotations

import pytest
import torch

from plinth_cpu.extension import load_extension

STATUS = load_extension("auto")
needs_extension = pytest.mark.skipif(STATUS.module is None, reason=f"C++ kernels not loaded: {STATUS.reason}")
ISAS = list(STATUS.module.available_isas()) if STATUS.module is not None else []
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
