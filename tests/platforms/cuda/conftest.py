"""GPU tests of the CUDA platform skip cleanly where there is no CUDA device or no Triton."""

from __future__ import annotations

import importlib.util

import pytest


def cuda_ready() -> str | None:
    """None when the GPU tests can run, else why not."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA device"
    if importlib.util.find_spec("plinth_cuda") is None:
        return "plinth-platform-cuda is not installed (pip install -e platforms/triton-kernels -e platforms/cuda)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if item.get_closest_marker("gpu") is None:
            continue
        reason = reason or cuda_ready()
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
