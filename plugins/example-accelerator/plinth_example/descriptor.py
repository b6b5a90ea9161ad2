"""The entry point's target. Keep it cheap: no torch, no vendor library, no device calls."""

from __future__ import annotations

import os

from plinth.platform import PlatformDescriptor, Probe

UNAVAILABLE_ENV = "PLINTH_EXAMPLE_UNAVAILABLE"


def probe() -> Probe:
    """Is the device usable here? A real plugin checks its driver/runtime, quickly."""
    if os.environ.get(UNAVAILABLE_ENV) == "1":
        return Probe(False, f"disabled by {UNAVAILABLE_ENV}=1")
    return Probe(True, "simulated accelerator on host CPU tensors")


DESCRIPTOR = PlatformDescriptor(
    name="example",
    platform_class="plinth_example.platform:ExamplePlatform",
    probe=probe,
    api=((1, 0), (2, 0)),
    priority=-10,  # below the cpu platform: chosen only when named (--device example)
    description="example vendor plugin: head-major KV cache, online-softmax attention",
)
