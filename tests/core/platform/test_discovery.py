"""Platform discovery and selection through (fake) entry points."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from plinth.platform import PLATFORM_API, discovery
from plinth.platform.discovery import PlatformSelectionError, choose_platform, discover_platforms


def _install(monkeypatch, *names):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    eps = [EntryPoint(n.lower(), f"fake_platforms:{n}", discovery.ENTRY_POINT_GROUP) for n in names]
    monkeypatch.setattr(discovery, "entry_points", lambda group: eps if group == discovery.ENTRY_POINT_GROUP else [])
    monkeypatch.delenv(discovery.DEVICE_ENV, raising=False)


def test_highest_priority_available_wins(monkeypatch):
    _install(monkeypatch, "LOW", "HIGH", "GONE")
    assert choose_platform(discover_platforms()).name == "high"
    assert discovery.select_platform().name == "fake"


def test_named_device_wins_over_priority(monkeypatch):
    _install(monkeypatch, "LOW", "HIGH")
    assert choose_platform(discover_platforms(), "low").name == "low"
    monkeypatch.setenv(discovery.DEVICE_ENV, "low")
    platform = discovery.select_platform()
    assert platform.name == "fake"


def test_tie_is_an_error_listing_candidates(monkeypatch):
    _install(monkeypatch, "HIGH", "HIGH_TWIN", "LOW")
    with pytest.raises(PlatformSelectionError, match="high, high-twin") as err:
        choose_platform(discover_platforms())
    assert "--device" in str(err.value)


def test_unknown_device_lists_available_and_reasons(monkeypatch):
    _install(monkeypatch, "LOW", "GONE")
    with pytest.raises(PlatformSelectionError) as err:
        choose_platform(discover_platforms(), "tpu")
    text = str(err.value)
    assert "unknown device 'tpu'" in text
    assert "low: available" in text and "gone: unavailable — no device found" in text


def test_unavailable_named_device_says_why(monkeypatch):
    _install(monkeypatch, "LOW", "GONE")
    with pytest.raises(PlatformSelectionError, match="'gone' is not usable here: no device found"):
        choose_platform(discover_platforms(), "gone")


def test_probe_that_raises_is_logged_and_skipped(monkeypatch, caplog):
    _install(monkeypatch, "BROKEN", "LOW")
    with caplog.at_level(logging.WARNING):
        statuses = discover_platforms()
    broken = next(s for s in statuses if s.name == "broken")
    assert not broken.available and "libfake.so" in broken.probe.reason
    assert "libfake.so" in caplog.text
    assert choose_platform(statuses).name == "low"


def test_incompatible_api_is_refused_with_both_ranges(monkeypatch):
    _install(monkeypatch, "FUTURE", "LOW")
    statuses = discover_platforms()
    future = next(s for s in statuses if s.name == "future")
    assert not future.available
    assert ">=2.0,<3.0" in future.probe.reason and f"provides {PLATFORM_API[0]}.{PLATFORM_API[1]}" in future.probe.reason
    assert "'future'" in future.probe.reason
    assert choose_platform(statuses).name == "low"


def test_entry_point_that_is_not_a_descriptor(monkeypatch):
    _install(monkeypatch, "NOT_A_DESCRIPTOR", "LOW")
    bad = next(s for s in discover_platforms() if s.name == "not_a_descriptor")
    assert not bad.available and "not a PlatformDescriptor" in bad.probe.reason


def test_no_platform_at_all(monkeypatch):
    _install(monkeypatch)
    with pytest.raises(PlatformSelectionError, match="pip install"):
        choose_platform(discover_platforms())


def test_descriptor_path_selects_directly(monkeypatch):
    _install(monkeypatch)
    assert discovery.select_platform("fake_platforms:LOW").name == "fake"


def test_installed_cpu_platform_is_discovered():
    cpu = next(s for s in discover_platforms() if s.name == "cpu")
    assert cpu.available and cpu.descriptor.platform_class == "plinth_cpu.platform:CpuPlatform"
