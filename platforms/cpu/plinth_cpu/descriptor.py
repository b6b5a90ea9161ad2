"""Entry point of the CPU platform: cheap to import, never imports torch."""

from __future__ import annotations

from plinth.platform import PlatformDescriptor, Probe
from plinth_cpu.isa import detect


def probe() -> Probe:
    info = detect()
    extras = f" ({', '.join(info.extensions)})" if info.extensions else ""
    return Probe(True, f"{info.isa}{extras}, {info.cores} cores: {info.model}")


DESCRIPTOR = PlatformDescriptor(
    name="cpu",
    platform_class="plinth_cpu.platform:CpuPlatform",
    probe=probe,
    api=((1, 3), (2, 0)),  # LinearMethod.takes_ggml / ggml_types (1.3): GGMLLinear
    priority=0,
    description="host CPU: torch kernels with AVX512/AVX2/NEON through oneDNN/ATen",
)
