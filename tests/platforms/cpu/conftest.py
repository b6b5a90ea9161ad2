"""Fixtures of the cpu platform's tests."""

from __future__ import annotations

import pytest

from plinth_cpu.kernels import CsrcOps
from tests.platforms.cpu.csrc_paths import ISAS, STATUS


@pytest.fixture(params=ISAS)
def ops(request):
    """The csrc kernels on each ISA path this CPU runs, in turn (the best path is restored after)."""
    STATUS.module.set_isa(request.param)
    yield CsrcOps(STATUS.module)
    STATUS.module.set_isa(ISAS[0])
