"""Entry point of the ROCm platform: cheap to import (torch only inside ``probe()``)."""

from __future__ import annotations

from plinth.platform import PlatformDescriptor, Probe

ROCM_TORCH_HINT = "pip install torch --index-url https://download.pytorch.org/whl/rocm6.4"


def probe() -> Probe:
    """A ROCm build of torch (``torch.version.hip``) that sees an AMD GPU? Never raises."""
    try:
        import torch

        hip = getattr(torch.version, "hip", None)
        if not hip:
            return Probe(False, f"torch {torch.__version__} is not a ROCm build (torch.version.hip is unset): "
                                f"{ROCM_TORCH_HINT}")
        if not torch.cuda.is_available():
            return Probe(False, f"ROCm torch (HIP {hip}) sees no AMD GPU: check the amdgpu driver, "
                                "/dev/kfd permissions and HIP_VISIBLE_DEVICES")
        props = torch.cuda.get_device_properties(0)
        arch = getattr(props, "gcnArchName", "?").split(":")[0]
        return Probe(True, f"{torch.cuda.device_count()} x {props.name} ({arch}), HIP {hip}, "
                           f"{props.total_memory / 2**30:.1f} GiB")
    except Exception as exc:  # a broken driver must not break platform discovery
        return Probe(False, f"ROCm probe failed: {type(exc).__name__}: {exc}")


DESCRIPTOR = PlatformDescriptor(
    name="rocm",
    platform_class="plinth_rocm.platform:RocmPlatform",
    probe=probe,
    # Op.QK_NORM_ROTARY from plinth_triton, Feature.PROFILE_RUN (1.2); Capabilities batch defaults (1.6)
    api=((1, 6), (2, 0)),
    priority=100,
    description="AMD GPUs (ROCm): shared Triton kernels, HIP graphs, RCCL; not yet run on AMD hardware",
)
