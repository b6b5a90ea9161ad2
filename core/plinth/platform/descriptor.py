"""The cheap descriptor a platform's entry point names: importable without torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.platform.version import ApiRange

if TYPE_CHECKING:
    from plinth.platform.platform import Platform


@dataclass(frozen=True)
class Probe:
    """Whether a platform can run here, and why (or why not), in words a user can act on."""

    available: bool
    reason: str


@dataclass(frozen=True)
class PlatformDescriptor:
    """What the ``plinth.platforms`` entry point names.

    Importing the module that defines it must be cheap: no torch, no vendor library.
    The heavy platform class is imported by :meth:`load` only once it is selected.
    """

    name: str  # the device name users type: ``--device NAME`` / ``PLINTH_DEVICE``
    platform_class: str  # "package.module:ClassName" of the Platform subclass
    probe: Callable[[], Probe]  # is it usable here? must be fast; may raise (core catches)
    api: ApiRange = ((1, 0), (2, 0))  # contract versions this plugin supports, [min, max)
    priority: int = 0  # among available platforms the highest wins when none is named
    description: str = ""  # one line for `plinth platforms`

    def load(self) -> Platform:
        """Import and instantiate the platform class."""
        module_name, _, attr = self.platform_class.partition(":")
        cls = getattr(importlib.import_module(module_name), attr)
        return cls()
