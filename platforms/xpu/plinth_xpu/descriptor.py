"""Entry point of the XPU platform: cheap to import (torch only inside ``probe()``)."""

from __future__ import annotations

from plinth.platform import PlatformDescriptor, Probe

XPU_TORCH_HINT = "pip install torch --index-url https://download.pytorch.org/whl/xpu"
MIN_TORCH = (2, 5)


def torch_version_tuple(version: str) -> tuple[int, int]:
    """``"2.9.0+xpu"`` -> ``(2, 9)``."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def probe() -> Probe:
    """Native ``torch.xpu`` (torch >= 2.5) with an Intel GPU? Never raises."""
    try:
        import torch

        if torch_version_tuple(torch.__version__) < MIN_TORCH:
            return Probe(False, f"torch {torch.__version__} predates native XPU support (needs >= 2.5): "
                                f"{XPU_TORCH_HINT}")
        xpu = getattr(torch, "xpu", None)
        if xpu is None or not xpu.is_available():
            return Probe(False, f"torch {torch.__version__} sees no Intel GPU (no XPU build, or no Level Zero "
                                f"driver/device): {XPU_TORCH_HINT}")
        props = xpu.get_device_properties(0)
        return Probe(True, f"{xpu.device_count()} x {props.name}, {props.total_memory / 2**30:.1f} GiB, "
                           f"torch {torch.__version__}")
    except Exception as exc:  # a broken driver must not break platform discovery
        return Probe(False, f"XPU probe failed: {type(exc).__name__}: {exc}")


DESCRIPTOR = PlatformDescriptor(
    name="xpu",
    platform_class="plinth_xpu.platform:XpuPlatform",
    probe=probe,
    api=((1, 2), (2, 0)),  # Op.QK_NORM_ROTARY from plinth_triton, Feature.PROFILE_RUN (1.2)
    priority=100,
    description="Intel GPUs (torch.xpu): shared Triton kernels, XPU graphs, xccl; not yet run on Intel hardware",
)
