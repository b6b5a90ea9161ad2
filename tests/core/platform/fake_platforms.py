"""Descriptors for discovery tests: importable by 'fake_platforms:NAME'."""

from __future__ import annotations

from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform import Capabilities, ConfigPatch, PlatformDescriptor, Probe
from plinth_cpu.platform import CpuPlatform


class FakePlatform(CpuPlatform):
    """A cpu platform under another name, for selection tests."""

    name = "fake"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float32",), kv_cache_dtypes=("float32",))

    def configure(self, config) -> ConfigPatch:
        return ConfigPatch()

    def attention_backends(self):
        return (ReferenceAttentionBackend(),)


def _available():
    return Probe(True, "always here")


def _raises():
    raise RuntimeError("driver library libfake.so not found")


HIGH = PlatformDescriptor("high", "fake_platforms:FakePlatform", _available, priority=50)
HIGH_TWIN = PlatformDescriptor("high-twin", "fake_platforms:FakePlatform", _available, priority=50)
LOW = PlatformDescriptor("low", "fake_platforms:FakePlatform", _available, priority=1)
GONE = PlatformDescriptor("gone", "fake_platforms:FakePlatform", lambda: Probe(False, "no device found"),
                          priority=100)
BROKEN = PlatformDescriptor("broken", "fake_platforms:FakePlatform", _raises, priority=90)
FUTURE = PlatformDescriptor("future", "fake_platforms:FakePlatform", _available, api=((2, 0), (3, 0)),
                            priority=99)
NOT_A_DESCRIPTOR = object()
