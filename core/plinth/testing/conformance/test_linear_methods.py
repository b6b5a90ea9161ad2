"""Every linear method a platform offers computes what the contract says, plain and gated.

The ``"unquantized"`` method against ``F.linear`` on the same (dtype-rounded) values; every method's
gated path (``prepare_gated`` + ``apply_silu_and_mul``, contract 1.5) against its own unfused path
(``apply`` on ``prepare``'s form, then ``reference.silu_and_mul``), with and without bias, at row
counts from one token to a prefill chunk (a platform may switch kernels by rows: the cuda platform
fuses the activation into its GEMM from 2,048 rows); every method's ``apply_add`` (contract 1.6), where it
does not decline, against ``residual + apply(x)``, written into ``residual``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plinth.ops import reference
from plinth.platform.linear_method import UNQUANTIZED
from plinth.testing.conformance.tolerances import DTYPES, assert_close

ROWS = (1, 7, 2100)
IN_FEATURES, INTERMEDIATE = 256, 384  # gate/up weight: [2 * 384, 256]


def _methods(platform):
    methods = dict(platform.quantization_methods())
    if not methods:
        pytest.skip("platform offers no linear methods (core's torch method runs)")
    return methods


def _inputs(rows: int, dtype: torch.dtype, device: torch.device, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, IN_FEATURES, generator=gen).to(dtype)
    w = (torch.randn(2 * INTERMEDIATE, IN_FEATURES, generator=gen) * IN_FEATURES ** -0.5).to(dtype)
    b = (torch.randn(2 * INTERMEDIATE, generator=gen) * 0.1).to(dtype)
    return x.to(device), w.to(device), b.to(device)


def _every_method_case(platform, dtype: str, seed: int):
    """``(name, method, rows, x, w, b)`` for every method and row count, in ``dtype`` on the platform's device."""
    if dtype not in platform.capabilities.dtypes:
        pytest.skip(f"platform does not declare dtype {dtype}")
    device = platform.device.torch_device()
    for name, method in _methods(platform).items():
        for rows in ROWS:
            yield (name, method, rows, *_inputs(rows, DTYPES[dtype], device, seed=seed + rows))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_unquantized_method_is_f_linear(plinth_platform, dtype):
    methods = _methods(plinth_platform)
    if dtype not in plinth_platform.capabilities.dtypes:
        pytest.skip(f"platform does not declare dtype {dtype}")
    if UNQUANTIZED not in methods:
        pytest.skip("platform offers no 'unquantized' method (core's torch method runs)")
    method, dt = methods[UNQUANTIZED], DTYPES[dtype]
    device = plinth_platform.device.torch_device()
    for rows in ROWS:
        x, w, b = _inputs(rows, dt, device, seed=rows)
        plain = F.linear(x.cpu().float(), w.cpu().float(), b.cpu().float())
        unbiased = F.linear(x.cpu().float(), w.cpu().float())
        got = method.apply(x, method.prepare(w.clone()), b)
        plinth_platform.device.synchronize()
        assert got.shape == (rows, 2 * INTERMEDIATE) and got.dtype == dt
        assert_close(got, plain, dtype, f"unquantized apply at {rows} rows")
        gated = method.prepare_gated(w.clone())
        for bias, product in ((None, unbiased), (b, plain)):
            got = method.apply_silu_and_mul(x, gated, bias, reference.silu_and_mul)
            plinth_platform.device.synchronize()
            assert got.shape == (rows, INTERMEDIATE) and got.dtype == dt
            assert_close(got, reference.silu_and_mul(product.to(dt)), dtype,
                         f"unquantized apply_silu_and_mul at {rows} rows, bias {bias is not None}")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_every_methods_gated_path_is_its_unfused_path(plinth_platform, dtype):
    for name, method, rows, x, w, b in _every_method_case(plinth_platform, dtype, seed=100):
        prepared, gated = method.prepare(w.clone()), method.prepare_gated(w.clone())
        for bias in (None, b):
            unfused = reference.silu_and_mul(method.apply(x, prepared, bias))
            got = method.apply_silu_and_mul(x, gated, bias, reference.silu_and_mul)
            plinth_platform.device.synchronize()
            assert got.shape == unfused.shape and got.dtype == unfused.dtype, name
            assert_close(got, unfused, dtype,
                         f"method {name!r}: apply_silu_and_mul at {rows} rows, bias {bias is not None}")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_every_methods_residual_add_is_in_place_and_equals_apply_plus_residual(plinth_platform, dtype):
    for name, method, rows, x, w, b in _every_method_case(plinth_platform, dtype, seed=200):
        prepared = method.prepare(w.clone())
        for bias in (None, b):
            residual = torch.randn(rows, 2 * INTERMEDIATE, generator=torch.Generator().manual_seed(rows)).to(x)
            expected = residual.float() + method.apply(x, prepared, bias).float()
            got = method.apply_add(x, prepared, bias, residual)
            plinth_platform.device.synchronize()
            if got is None:
                continue  # the method declines: the caller adds
            assert got.data_ptr() == residual.data_ptr() and got.shape == residual.shape, (
                f"method {name!r}: apply_add must write into residual and return it")
            assert got.dtype == x.dtype, name
            assert_close(got, expected, dtype, f"method {name!r}: apply_add at {rows} rows, bias {bias is not None}")
