"""Loads the optional C++ kernels (``plinth_cpu._C``) and picks their ISA path; never raises.

``PLINTH_CPU_KERNELS`` chooses: ``auto`` (default: the best ISA path cpuid allows),
``reference`` (core's torch ops and the torch attention path), or an ISA path name
(``avx512``, ``avx2``, ``neon``, ``portable``) to force a slower path for testing.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any

ENV = "PLINTH_CPU_KERNELS"


@dataclass(frozen=True)
class ExtensionStatus:
    module: Any | None  # plinth_cpu._C, or None when the torch path runs
    isa: str  # the active ISA path, or "reference"
    reason: str  # why the extension is off, or how its path was chosen

    @property
    def describe(self) -> str:
        """One line for `plinth platforms`."""
        if self.module is None:
            return f"reference ({self.reason})"
        return f"csrc-{self.isa}" + (f" ({self.reason})" if self.reason else "")


def load_extension(choice: str | None = None, module_name: str = "plinth_cpu._C") -> ExtensionStatus:
    """The extension with its ISA path set by ``choice`` (default: the env switch)."""
    choice = (choice if choice is not None else os.environ.get(ENV, "auto")).strip().lower() or "auto"
    if choice == "reference":
        return ExtensionStatus(None, "reference", f"forced by {ENV}=reference")
    try:
        import torch  # noqa: F401 - first, so the kernels share torch's OpenMP runtime

        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a missing or broken build must never stop the platform
        return ExtensionStatus(None, "reference", f"C++ kernels unavailable: {type(exc).__name__}: {exc}; "
                               "reinstall with a C++17 compiler: pip install -e ./platforms/cpu")
    available = list(module.available_isas())
    if choice == "auto":
        module.set_isa(available[0])
        return ExtensionStatus(module, available[0], "")
    if choice not in available:
        module.set_isa(available[0])
        return ExtensionStatus(module, available[0], f"{ENV}={choice} is not available here "
                               f"(choose from auto, reference, {', '.join(available)})")
    module.set_isa(choice)
    return ExtensionStatus(module, choice, f"forced by {ENV}={choice}")


@functools.lru_cache(maxsize=1)
def extension() -> ExtensionStatus:
    """The process-wide extension status, loaded once."""
    return load_extension()
