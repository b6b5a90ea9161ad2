"""The csrc ``gemv_bf16`` linear equals F.linear on every ISA path this CPU runs, at many shapes
(odd N and K, bias, strided rows, M across the register-blocking and chunk edges)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plinth.platform.linear_method import UNQUANTIZED
from plinth.testing.conformance.tolerances import assert_close
from plinth_cpu.gemv import GemvBf16Linear, PairBlockedWeight, native_bf16, pack_pairs, unpack_pairs
from plinth_cpu.linear import OneDnnPackedLinear
from tests.platforms.cpu.csrc_paths import STATUS, needs_extension

pytestmark = needs_extension
BF16 = torch.bfloat16


def _case(m, n, k, bias, seed=0):
    gen = torch.Generator().manual_seed(seed + m * 7919 + n * 31 + k)
    weight = (torch.randn(n, k, generator=gen) / k ** 0.5).to(BF16)
    x = torch.randn(m, k, generator=gen).to(BF16)
    b = torch.randn(n, generator=gen).to(BF16) if bias else None
    return x, weight, b


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6, 7, 13, 64, 65, 131])
@pytest.mark.parametrize("n,k,bias", [(960, 576, False), (17, 33, True), (1, 1, False), (100, 7, True),
                                      (576, 1537, False), (64, 2, True), (49, 576, False)])
def test_gemv_matches_f_linear(ops, m, n, k, bias):
    x, weight, b = _case(m, n, k, bias)
    method = GemvBf16Linear(ops.C, OneDnnPackedLinear())
    out = method.apply(x, method.prepare(weight), b)
    assert out.shape == (m, n) and out.dtype == BF16
    assert_close(out, F.linear(x, weight, b), "bfloat16", f"gemv_bf16 on {ops.C.isa()} m={m} n={n} k={k}")


def test_gemv_writes_every_output_and_only_them(ops):
    """Strided rows in and out: the kernel writes N columns of each row, nothing past them."""
    x, weight, b = _case(5, 37, 41, True)
    wide = torch.randn(5, 60).to(BF16)
    wide[:, 3:44] = x
    packed = pack_pairs(weight)
    out = torch.full((5, 50), float("nan"), dtype=BF16)
    ops.C.gemv_bf16(out.data_ptr(), wide[:, 3:].data_ptr(), packed.packed.data_ptr(), b.data_ptr(), 5, 37, 41,
                    wide.stride(0), out.stride(0), 2)
    assert_close(out[:, :37], F.linear(x, weight, b), "bfloat16", f"strided gemv_bf16 on {ops.C.isa()}")
    assert out[:, 37:].isnan().all(), "wrote past N"


def test_gemv_on_fresh_inputs_at_decode_shapes(ops):
    method = GemvBf16Linear(ops.C, OneDnnPackedLinear())
    for seed in range(3):
        for n, k in ((3072, 576), (576, 1536), (2048, 576)):
            x, weight, _ = _case(1, n, k, False, seed=seed * 1000)
            assert_close(method.apply(x, method.prepare(weight)), F.linear(x, weight), "bfloat16",
                         f"gemv_bf16 on {ops.C.isa()} {n}x{k}")


def test_pack_round_trip_and_layout():
    weight = torch.randn(35, 9).to(BF16)
    packed = pack_pairs(weight)
    assert packed.packed.shape == (3, 5, 16, 2)
    assert torch.equal(unpack_pairs(packed), weight)
    assert torch.equal(packed.packed[1, 2, 3], weight[16 + 3, 4:6])  # block 1, pair 2, row 3


def test_method_falls_back_outside_bf16():
    method = GemvBf16Linear(STATUS.module, OneDnnPackedLinear())
    w32 = torch.randn(24, 40)
    prepared = method.prepare(w32)
    assert not isinstance(prepared, PairBlockedWeight)  # fp32 weights go to oneDNN packing
    x32 = torch.randn(3, 40)
    assert_close(method.apply(x32, prepared), F.linear(x32, w32), "float32", "fp32 fallback")
    x, weight, b = _case(3, 24, 40, True)
    prepared = method.prepare(weight)
    assert_close(method.apply(x.float(), prepared, b.float()), F.linear(x.float(), weight.float(), b.float()),
                 "float32", "fp32 activations on a packed bf16 weight")
    assert method.apply(torch.empty(0, 40, dtype=BF16), prepared).shape == (0, 24)
    assert method.apply(torch.empty(2, 0, 40, dtype=BF16), prepared).shape == (2, 0, 24)
    x3 = torch.randn(2, 3, 40).to(BF16)
    assert_close(method.apply(x3, prepared, b), F.linear(x3, weight, b), "bfloat16", "3-d input")


def test_the_platform_offers_gemv_where_bf16_dot_products_are_native():
    from plinth_cpu.extension import extension
    from plinth_cpu.platform import CpuPlatform

    method = CpuPlatform().quantization_methods()[UNQUANTIZED]
    if native_bf16(extension().module):  # GGML blocks first (ggml_linear.py), float weights to the gemv method
        assert type(method).__name__ == "GGMLLinear" and type(method.fallback) is GemvBf16Linear
    else:  # off when forced
        assert type(method) is OneDnnPackedLinear
