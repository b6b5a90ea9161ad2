"""Finding platform plugins through entry points and choosing one."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from plinth.platform.descriptor import PlatformDescriptor, Probe
from plinth.platform.version import PLATFORM_API, api_compatible, format_api

if TYPE_CHECKING:
    from plinth.platform.platform import Platform

ENTRY_POINT_GROUP = "plinth.platforms"
DEVICE_ENV = "PLINTH_DEVICE"

logger = logging.getLogger(__name__)


class PlatformSelectionError(RuntimeError):
    """No platform could be chosen; the message lists what exists and why."""


@dataclass(frozen=True)
class PlatformStatus:
    """One discovered platform and what its probe said."""

    name: str  # device name (the entry point's name when the descriptor failed to load)
    source: str  # "dist-name" or "module:attr" it came from
    descriptor: PlatformDescriptor | None  # None when loading the descriptor failed
    probe: Probe  # available + reason (incompatible API and load failures are unavailable)

    @property
    def available(self) -> bool:
        return self.probe.available


def load_descriptor(spec: str) -> PlatformDescriptor:
    """Import a descriptor from ``"package.module:attr"`` (used for out-of-tree testing)."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise PlatformSelectionError(f"expected 'module:attribute', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def _safe_probe(descriptor: PlatformDescriptor, source: str) -> Probe:
    if not api_compatible(descriptor.api):
        ours = ".".join(map(str, PLATFORM_API))
        reason = (f"plugin '{descriptor.name}' ({source}) supports platform API "
                  f"{format_api(descriptor.api)}, but this plinth provides {ours}; "
                  f"upgrade or downgrade one of them")
        logger.warning("refusing platform %s", reason)
        return Probe(False, reason)
    try:
        probe = descriptor.probe()
    except Exception as exc:  # a plugin's bug must never take core down
        logger.warning("platform '%s' probe raised %s: %s", descriptor.name, type(exc).__name__, exc)
        return Probe(False, f"probe raised {type(exc).__name__}: {exc}")
    if not isinstance(probe, Probe):
        return Probe(False, f"probe returned {type(probe).__name__}, expected Probe")
    if not probe.available:
        logger.info("platform '%s' unavailable: %s", descriptor.name, probe.reason)
    return probe


def status_of(descriptor: PlatformDescriptor, source: str) -> PlatformStatus:
    return PlatformStatus(descriptor.name, source, descriptor, _safe_probe(descriptor, source))


def discover_platforms() -> list[PlatformStatus]:
    """Every platform registered under ``plinth.platforms``, probed, sorted by priority."""
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = ep.dist.name if ep.dist is not None else ep.value
        try:
            descriptor = ep.load()
        except Exception as exc:
            logger.warning("cannot load platform plugin '%s' (%s): %s", ep.name, source, exc)
            found.append(PlatformStatus(ep.name, source, None, Probe(False, f"failed to load: {exc}")))
            continue
        if not isinstance(descriptor, PlatformDescriptor):
            found.append(PlatformStatus(ep.name, source, None, Probe(
                False, f"entry point names {type(descriptor).__name__}, not a PlatformDescriptor")))
            continue
        found.append(status_of(descriptor, source))
    return sorted(found, key=lambda s: (-(s.descriptor.priority if s.descriptor else -10**9), s.name))


def _describe(statuses: list[PlatformStatus]) -> str:
    lines = [f"  {s.name}: {'available' if s.available else 'unavailable'} — {s.probe.reason}"
             for s in statuses]
    return "\n".join(lines) or "  (no platform plugin is installed; pip install a plinth-platform-* package)"


def choose_platform(statuses: list[PlatformStatus], device: str | None = None) -> PlatformStatus:
    """The rule: a named device wins; otherwise the highest-priority available probe."""
    if device:
        named = [s for s in statuses if s.name == device]
        if not named:
            raise PlatformSelectionError(f"unknown device '{device}'. Installed platforms:\n{_describe(statuses)}")
        if not named[0].available:
            raise PlatformSelectionError(
                f"device '{device}' is not usable here: {named[0].probe.reason}\n"
                f"Installed platforms:\n{_describe(statuses)}")
        return named[0]
    available = [s for s in statuses if s.available]
    if not available:
        raise PlatformSelectionError(f"no platform is available here:\n{_describe(statuses)}")
    best = max(s.descriptor.priority for s in available)
    top = [s for s in available if s.descriptor.priority == best]
    if len(top) > 1:
        names = ", ".join(s.name for s in top)
        raise PlatformSelectionError(
            f"platforms {names} are all available with priority {best}; choose one with "
            f"--device NAME or {DEVICE_ENV}=NAME")
    return top[0]


def select_platform(device: str | None = None) -> Platform:
    """Choose and instantiate a platform (``device`` or ``$PLINTH_DEVICE`` wins when given).

    ``device`` may also be ``"package.module:attr"`` naming a descriptor directly.
    """
    device = device or os.environ.get(DEVICE_ENV) or None
    if device and ":" in device:
        status = status_of(load_descriptor(device), device)
        chosen = choose_platform([status], status.name)
    else:
        chosen = choose_platform(discover_platforms(), device)
    platform = chosen.descriptor.load()
    platform.setup_process()
    logger.info("selected platform '%s': %s", chosen.name, chosen.probe.reason)
    return platform
