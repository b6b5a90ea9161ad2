"""Entry point of the TPU platform: cheap to import (torch_xla is imported only by ``probe()``)."""

from __future__ import annotations

import importlib.util
import os

from plinth.platform import PlatformDescriptor, Probe

INSTALL_HINT = "pip install torch==2.9.0 torch-xla==2.9.0 (torch-xla[tpu] on a TPU VM), or run .ci/xla_venv.sh"


def probe() -> Probe:
    """torch_xla importable and a PJRT device to run on? Never raises.

    Available on a TPU (libtpu installed, ``PJRT_DEVICE`` unset or ``TPU``) or wherever the
    user named a PJRT device explicitly (``PJRT_DEVICE=CPU`` runs XLA:CPU, used by the tests).
    """
    try:
        if importlib.util.find_spec("torch_xla") is None:
            return Probe(False, f"torch_xla is not installed: {INSTALL_HINT}")
        pjrt = os.environ.get("PJRT_DEVICE")
        if not pjrt and importlib.util.find_spec("libtpu") is None:
            return Probe(False, "no TPU here (libtpu is not installed) and PJRT_DEVICE is unset; "
                                "set PJRT_DEVICE=CPU to run on XLA:CPU")
        import torch_xla
        import torch_xla.runtime as xr

        kind = xr.device_type() or "unknown"
        count = xr.global_runtime_device_count()
        return Probe(True, f"{count} x PJRT {kind} device(s), torch_xla {torch_xla.__version__}")
    except Exception as exc:  # a broken install must not break platform discovery
        return Probe(False, f"torch_xla probe failed: {type(exc).__name__}: {exc}")


DESCRIPTOR = PlatformDescriptor(
    name="tpu",
    platform_class="plinth_tpu.platform:TpuPlatform",
    probe=probe,
    api=((1, 1), (2, 0)),
    priority=90,
    description="TPUs via torch-xla: static-shape buckets compiled once, paged attention (Pallas on TPU)",
)
