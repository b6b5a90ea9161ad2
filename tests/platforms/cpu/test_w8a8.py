"""The csrc ``w8a8_linear`` equals its integer reference (activations quantized per row and weights per
channel exactly as the kernel does, an int64 matmul, then both scales in fp64) on every ISA path
this CPU runs: the integer sums are exact, so only the final float rounding may differ."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plinth_cpu.kernels import DTYPE_CODES
from plinth_cpu.w8a8 import W8A8Int8, W8A8Weight, pack, quantize_rows, quantize_weight, unpack
from tests.platforms.cpu.csrc_paths import DTYPES, STATUS, needs_extension

pytestmark = needs_extension


def _case(m, n, k, bias, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed + m * 7919 + n * 31 + k)
    weight = torch.randn(n, k, generator=gen) / k ** 0.5
    x = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    return x, weight, b


def _exact(x: torch.Tensor, weight: W8A8Weight, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference before its cast (fp64), and the magnitude its fp32 rounding errors scale with."""
    qx, sx = quantize_rows(x)
    acc = qx.to(torch.int64) @ unpack(weight).to(torch.int64).T
    out = acc.double() * sx.double()[:, None] * weight.scale.double()
    if bias is None:
        return out, out.abs()
    return out + bias.double(), out.abs() + bias.double().abs()


def _assert_rounding_close(out: torch.Tensor, exact: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype,
                           what: str) -> None:
    """Within the float rounding of the last steps: a few fp32 ulps of the terms, and one bf16 ulp of
    the result for bf16 outputs."""
    value, magnitude = exact
    bound = 4 * 2.0 ** -23 * magnitude + (2.0 ** -7 * value.abs() if dtype == torch.bfloat16 else 0) + 1e-30
    err = (out.double() - value).abs()
    assert (err <= bound).all(), f"{what}: max error {err.max().item():.3g} past the rounding bound"


def _call(C, out, x2, weight, bias, threads):
    n, k = weight.out_features, weight.in_features
    C.w8a8_linear(out.data_ptr(), x2.data_ptr(), weight.packed.data_ptr(), weight.row_sum.data_ptr(),
                  weight.scale.data_ptr(), 0 if bias is None else bias.data_ptr(), x2.shape[0], n, k,
                  x2.stride(0), out.stride(0), DTYPE_CODES[x2.dtype], threads)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("m", [1, 2, 5, 6, 7, 13, 64, 65, 131, 300])
@pytest.mark.parametrize("n,k,bias", [(960, 576, False), (17, 33, True), (1, 1, False), (100, 7, True),
                                      (576, 1537, True), (49, 578, False)])
def test_w8a8_matches_the_integer_reference(ops, dtype, m, n, k, bias):
    dt = DTYPES[dtype]
    x, weight, b = _case(m, n, k, bias, dt)
    method = W8A8Int8(ops.C)
    prepared = method.prepare(weight)
    out = method.apply(x, prepared, b)
    assert out.shape == (m, n) and out.dtype == dt
    what = f"w8a8 on {ops.C.isa()} {dtype} m={m} n={n} k={k}"
    _assert_rounding_close(out, _exact(x, prepared, b), dt, what)
    torch.testing.assert_close(out, method.reference(x, prepared, b), rtol=2.0 ** -7 if dt == torch.bfloat16
                               else 1e-6, atol=1e-6, msg=what)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_w8a8_writes_every_output_and_only_them_on_strided_rows(ops, dtype):
    dt = DTYPES[dtype]
    m, n, k = 37, 71, 130
    x, weight, b = _case(m, n, k, True, dt, seed=3)
    prepared = W8A8Int8(ops.C).prepare(weight)
    wide = torch.randn(m, k + 9).to(dt)
    wide[:, :k] = x
    x2 = wide[:, :k]  # row stride k + 9
    exact = _exact(x, prepared, b)
    for threads in (1, 2):
        out = torch.full((m, n + 5), float("nan"), dtype=dt)  # row stride n + 5, poisoned
        _call(ops.C, out, x2, prepared, b, threads)
        assert not out[:, :n].isnan().any(), f"{ops.C.isa()}: an output was left unwritten"
        assert out[:, n:].isnan().all(), f"{ops.C.isa()}: wrote past the N columns of a row"
        _assert_rounding_close(out[:, :n], exact, dt, f"strided w8a8 on {ops.C.isa()} threads={threads}")


def test_every_isa_path_gives_the_same_result():
    x, weight, b = _case(70, 300, 577, True, torch.float32, seed=5)
    prepared = W8A8Int8(STATUS.module).prepare(weight)
    outs = []
    try:
        for isa in STATUS.module.available_isas():
            STATUS.module.set_isa(isa)
            outs.append(W8A8Int8(STATUS.module).apply(x, prepared, b))
    finally:
        STATUS.module.set_isa(STATUS.module.available_isas()[0])
    for other in outs[1:]:  # same integer sums; the scale is applied in the same order on every path
        torch.testing.assert_close(other, outs[0], rtol=1e-6, atol=1e-6)


def test_an_all_zero_row_gives_the_bias():
    x, weight, b = _case(3, 40, 64, True, torch.float32)
    x[1] = 0
    out = W8A8Int8(STATUS.module).apply(x, W8A8Int8(STATUS.module).prepare(weight), b)
    assert torch.equal(out[1], b)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_the_error_against_the_float_linear_is_at_the_int8_level(dtype):
    dt = DTYPES[dtype]
    x, weight, b = _case(64, 1536, 576, True, dt, seed=9)
    out = W8A8Int8(STATUS.module).apply(x, W8A8Int8(STATUS.module).prepare(weight), b).float()
    ref = F.linear(x.float(), weight, b.float() if b is not None else None)
    rel = ((out - ref).norm() / ref.norm()).item()
    assert 1e-3 < rel < 0.02, f"relative error {rel:.4f}: 8-bit operands give about 1%"


def test_pack_round_trips_and_row_sums_are_the_weight_sums():
    weight = torch.randn(37, 11)
    qw, scale = quantize_weight(weight)
    prepared = W8A8Int8(STATUS.module).prepare(weight)
    assert prepared.packed.shape == (3, 3, 16, 4) and prepared.packed.dtype == torch.int8
    assert torch.equal(unpack(prepared), qw) and torch.equal(prepared.scale, scale)
    assert torch.equal(prepared.row_sum, qw.sum(dim=1, dtype=torch.int32))
    assert ((qw.float() * scale[:, None] - weight).abs() <= scale[:, None] / 2 + 1e-6).all()
    dense = pack(qw).transpose(1, 2).reshape(48, 12)  # the padding is zeros
    assert torch.equal(dense[:37, :11], qw) and not dense[37:].any() and not dense[:, 11:].any()


def test_activation_quantization_rounds_half_to_even_and_hits_127(ops):
    x = torch.tensor([[127.0, 0.5, 1.5, -2.5, -127.0, 3.49]])
    q, s = quantize_rows(x)
    assert s.item() == 1.0 and q.tolist() == [[127, 0, 2, -2, -127, 3]]
    out = W8A8Int8(ops.C).apply(x, W8A8Int8(ops.C).prepare(torch.eye(6)))  # the kernel's own rounding
    assert torch.round(out).tolist() == q.float().tolist(), ops.C.isa()


def test_the_platform_offers_w8a8_next_to_int8_weight_only():
    from plinth.platform import select_platform

    methods = select_platform("cpu").quantization_methods()
    assert isinstance(methods.get("w8a8_int8"), W8A8Int8) and "int8_weight_only" in methods
