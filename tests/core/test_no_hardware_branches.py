"""Core never asks which hardware it runs on (DESIGN.md §1): no identity branches in core/."""

from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core" / "plinth"
FORBIDDEN = re.compile(r"is_cuda|device_type\s*==|\.cuda\(|torch\.cuda\.|torch\.version\.(hip|cuda)|\"cuda\"|'cuda'")


def test_core_has_no_hardware_identity_checks():
    offenders = [f"{path.relative_to(CORE)}:{n}: {line.strip()}"
                 for path in CORE.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if FORBIDDEN.search(line)]
    assert not offenders, "hardware identity checks in core:\n" + "\n".join(offenders)
