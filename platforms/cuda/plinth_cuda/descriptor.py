"""Entry point of the CUDA platform: cheap to import (no torch until ``probe()`` runs)."""

from __future__ import annotations

from plinth.platform import PlatformDescriptor, Probe


def probe() -> Probe:
    """CUDA usable here? Imports torch lazily and never raises."""
    try:
        import torch

        if not torch.cuda.is_available():
            return Probe(False, "torch reports no CUDA device (no NVIDIA driver/GPU, or a CPU-only torch build)")
        if torch.version.hip is not None:
            return Probe(False, "this torch is a ROCm build; use the rocm platform")
        props = torch.cuda.get_device_properties(0)
        count = torch.cuda.device_count()
        return Probe(True, f"{count} x {props.name}, sm_{props.major}{props.minor}, "
                           f"{props.total_memory / 2**30:.1f} GiB")
    except Exception as exc:  # a broken driver must not break platform discovery
        return Probe(False, f"CUDA probe failed: {type(exc).__name__}: {exc}")


DESCRIPTOR = PlatformDescriptor(
    name="cuda",
    platform_class="plinth_cuda.platform:CudaPlatform",
    probe=probe,
    # LinearMethod.quantizes_lm_head (1.4): fp8; prepare_gated, apply_silu_and_mul (1.5); batch defaults (1.6)
    api=((1, 6), (2, 0)),
    priority=100,
    description="NVIDIA GPUs: Triton paged attention and fused kernels, CUDA graphs, NCCL",
)
