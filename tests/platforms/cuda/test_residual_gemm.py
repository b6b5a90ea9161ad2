"""``GemvLinear.apply_add``: the residual added inside the GEMM (``addmm_``) from ``residual_min_rows`` rows, in
place; below them, with a bias or an odd residual it declines (runs on the CPU: it is torch's addmm)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("plinth_triton") is None:
    pytest.skip("plinth-kernels-triton is not installed", allow_module_level=True)


def _case(rows, n=24, k=40, dtype=torch.float32):
    gen = torch.Generator().manual_seed(rows)
    return (torch.randn(rows, k, generator=gen).to(dtype), torch.randn(n, k, generator=gen).to(dtype),
            torch.randn(rows, n, generator=gen).to(dtype))


@pytest.mark.parametrize("rows", [8, 33])
def test_from_the_threshold_the_residual_is_added_in_place(rows):
    from plinth_triton.gemv import GemvLinear

    x, w, residual = _case(rows)
    expected = residual + F.linear(x, w)
    got = GemvLinear(num_sms=4, residual_min_rows=8).apply_add(x, w, None, residual)
    assert got is residual
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_it_declines_below_the_threshold_with_a_bias_or_an_odd_residual():
    from plinth_triton.gemv import GemvLinear

    method = GemvLinear(num_sms=4, residual_min_rows=8)
    x, w, residual = _case(7)
    assert method.apply_add(x, w, None, residual) is None  # below the threshold
    x, w, residual = _case(8)
    before = residual.clone()
    assert method.apply_add(x, w, torch.zeros(w.shape[0]), residual) is None  # a bias
    assert method.apply_add(x, w, None, residual.t().contiguous().t()) is None  # not contiguous
    assert method.apply_add(x, w, None, residual.double()) is None  # another dtype
    assert GemvLinear(num_sms=4).apply_add(x, w, None, residual) is None  # never fuses
    assert torch.equal(residual, before)


@pytest.mark.parametrize("env,rows", [(None, 2048), ("0", None)])
def test_the_cuda_platform_switch(monkeypatch, env, rows):
    if importlib.util.find_spec("plinth_cuda") is None:
        pytest.skip("plinth-platform-cuda is not installed")
    from plinth_cuda.platform import CudaPlatform

    from tests.platforms.cuda.test_gated_switch import FakeDevice

    if env is None:
        monkeypatch.delenv("PLINTH_GEMM_RESIDUAL", raising=False)
    else:
        monkeypatch.setenv("PLINTH_GEMM_RESIDUAL", env)
    platform = object.__new__(CudaPlatform)
    platform._device = FakeDevice((9, 0), 228)
    assert platform.quantization_methods()["unquantized"].residual_min_rows == rows
