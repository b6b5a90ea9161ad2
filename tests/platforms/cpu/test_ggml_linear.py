"""The csrc ``ggml_linear`` (GGML Q8_0 / Q4_0 / Q4_1 blocks kept quantized) equals the reference
``F.linear(x, w.dequantize().to(x.dtype), bias)`` on every ISA path this CPU runs, for bf16 and fp32
activations, at many shapes, through both kernel paths (direct at small M, dequantizing at large M).

Tolerance, from what the kernels may do differently: fp32 sums in another order (and, for bf16,
the direct kernels' offset trick) within 2^-16 of sum |x w|; for bf16 also one rounding of the
output on each side (2^-8 |ref|) and the weight's own bf16 rounding, which the reference applies and
the direct kernels skip (at most 2^-9 of each |w|, so 2^-8 of sum |x w|). Weights come from
gguf.quants.quantize, so the packed layout is checked against gguf's own block format.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType
from gguf.quants import quantize

from plinth.model.ggml_tensor import GGMLTensor
from plinth_cpu.ggml_linear import DEFAULT_TYPES, ENV, TYPE_CODES, GGMLLinear, GGMLPackedWeight, dequantize_packed, pack
from plinth_cpu.kernels import DTYPE_CODES
from plinth_cpu.linear import OneDnnPackedLinear
from tests.platforms.cpu.csrc_paths import DTYPES, STATUS, needs_extension

pytestmark = needs_extension
TYPES = sorted(TYPE_CODES)
SHAPES = [(17, 32, True), (40, 64, False), (960, 576, True), (49, 1536, False), (23, 4096, True)]  # N, K, bias
MS = [1, 2, 7, 32, 300]


def _weight(type_name: str, n: int, k: int, seed: int) -> GGMLTensor:
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n, k)) / k ** 0.5 + 0.02 * rng.standard_normal((n, 1))).astype(np.float32)
    return GGMLTensor(type_name, torch.from_numpy(quantize(w, GGMLQuantizationType[type_name])), k)


def _inputs(m: int, n: int, k: int, bias: bool, dtype: torch.dtype, seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    return x, b


def _assert_matches(out, x, weight: GGMLTensor, bias, what: str) -> None:
    deq = weight.dequantize()
    ref = F.linear(x, deq.to(x.dtype), bias).double()
    mag = x.double().abs() @ deq.double().abs().T
    bound = 2.0 ** -16 * mag + 1e-30
    if x.dtype == torch.bfloat16:
        bound = bound + 2.0 ** -8 * (ref.abs() + mag)
    err = (out.double() - ref).abs()
    assert out.dtype == x.dtype and out.shape == ref.shape, what
    assert (err <= bound).all(), f"{what}: max error {err.max().item():.3g}, bound there {bound[err > bound].min():.3g}"


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("type_name", TYPES)
def test_ggml_linear_matches_the_reference(ops, type_name, dtype):
    dt = DTYPES[dtype]
    method = GGMLLinear(ops.C, OneDnnPackedLinear(), types=TYPES)
    for i, (n, k, bias) in enumerate(SHAPES):
        weight = _weight(type_name, n, k, seed=i)
        prepared = method.prepare(weight)
        assert type(prepared) is GGMLPackedWeight
        for m in MS:
            x, b = _inputs(m, n, k, bias, dt, seed=1000 * i + m)
            _assert_matches(method.apply(x, prepared, b), x, weight, b,
                            f"{type_name} on {ops.C.isa()} {dtype} m={m} n={n} k={k}")


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("type_name", TYPES)
def test_every_row_tile_and_fresh_inputs(ops, type_name, dtype):
    """M = 1..8 (each row tiling of the direct kernels), 13, 47-49 (the direct/dequant switch), new inputs."""
    dt = DTYPES[dtype]
    weight = _weight(type_name, 75, 96, seed=7)
    method = GGMLLinear(ops.C, OneDnnPackedLinear(), types=TYPES)
    prepared = method.prepare(weight)
    for seed, m in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 13, 47, 48, 49]):
        x, b = _inputs(m, 75, 96, seed % 2 == 0, dt, seed=torch.randint(0, 2**31, ()).item())
        _assert_matches(method.apply(x, prepared, b), x, weight, b, f"{type_name} on {ops.C.isa()} {dtype} m={m}")


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("type_name", TYPES)
def test_kernel_writes_every_output_and_only_them_on_strided_rows(ops, type_name, dtype):
    dt = DTYPES[dtype]
    n, k = 37, 128
    weight = _weight(type_name, n, k, seed=3)
    prepared = pack(weight)
    for m in (5, 60):  # the direct and the dequantizing path
        x, b = _inputs(m, n, k, True, dt, seed=m)
        wide = torch.randn(m, k + 9).to(dt)
        wide[:, 3:3 + k] = x
        for threads in (1, 2):
            out = torch.full((m, n + 5), float("nan"), dtype=dt)  # row stride n + 5, poisoned
            ops.C.ggml_linear(out.data_ptr(), wide[:, 3:].data_ptr(), prepared.packed.data_ptr(), b.data_ptr(), m,
                              n, k, wide.stride(0), out.stride(0), TYPE_CODES[type_name], DTYPE_CODES[dt], threads)
            assert out[:, n:].isnan().all(), f"{ops.C.isa()}: wrote past the N columns of a row"
            _assert_matches(out[:, :n], x, weight, b, f"strided {type_name} on {ops.C.isa()} threads={threads}")


@pytest.mark.parametrize("type_name", TYPES)
def test_pack_round_trips_to_gguf_values(type_name):
    weight = _weight(type_name, 35, 96, seed=11)
    prepared = pack(weight)
    assert torch.equal(dequantize_packed(prepared), weight.dequantize())
    quant, scales = (512, 1) if type_name == "Q8_0" else (256, 2 if type_name == "Q4_1" else 1)
    assert prepared.packed.shape == (3, 3, quant + 32 * scales) and prepared.packed.dtype == torch.uint8
    assert not prepared.packed[2, :, quant:].contiguous().view(torch.float16).view(-1, 16)[:, 3:].any()  # padded rows: d = m = 0


def test_pack_layout_of_one_nibble():
    """Row 18 (block 1, lane 2), k = 32 + 13 (group 1, word 1, i = 2, odd): bits 16 + 8 of the word."""
    weight = _weight("Q4_1", 20, 64, seed=5)
    codes = torch.round((weight.dequantize() - _min(weight)) / _scale(weight)).to(torch.int32)
    words = pack(weight).packed[1, 1, :256].view(torch.int32).view(4, 16)
    assert (words[1, 2] >> 24) & 15 == codes[18, 45]


def _scale(weight: GGMLTensor) -> torch.Tensor:
    raw = weight.data.view(weight.shape[0], -1, 20)
    return raw[..., :2].contiguous().view(torch.float16)[..., 0].float().repeat_interleave(32, dim=1)


def _min(weight: GGMLTensor) -> torch.Tensor:
    raw = weight.data.view(weight.shape[0], -1, 20)
    return raw[..., 2:4].contiguous().view(torch.float16)[..., 0].float().repeat_interleave(32, dim=1)


def test_the_wrapper_takes_batches_odd_strides_and_falls_back():
    method = GGMLLinear(STATUS.module, OneDnnPackedLinear(), types=TYPES)
    weight = _weight("Q4_0", 24, 64, seed=2)
    prepared = method.prepare(weight)
    x = torch.randn(2, 3, 64).to(torch.bfloat16)
    _assert_matches(method.apply(x, prepared).view(6, 24), x.view(6, 64), weight, None, "3-D input")
    xt = torch.randn(64, 5).to(torch.bfloat16).T  # column stride 5: copied
    _assert_matches(method.apply(xt, prepared), xt, weight, None, "strided input")
    x16 = torch.randn(3, 64).to(torch.float16)  # no kernel for fp16: the torch reference path
    torch.testing.assert_close(method.apply(x16, prepared), F.linear(x16, weight.dequantize().half()))
    assert method.apply(torch.empty(0, 64, dtype=torch.bfloat16), prepared).shape == (0, 24)


def test_float_weights_go_to_the_fallback():
    method = GGMLLinear(STATUS.module, OneDnnPackedLinear(), types=TYPES)
    w = torch.randn(24, 40)
    prepared = method.prepare(w)
    assert not isinstance(prepared, GGMLPackedWeight)
    x = torch.randn(3, 40)
    torch.testing.assert_close(method.apply(x, prepared), F.linear(x, w))


def test_the_env_switch_turns_block_weights_off(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert GGMLLinear(STATUS.module, OneDnnPackedLinear()).ggml_types == DEFAULT_TYPES == {"Q4_0", "Q4_1"}
    monkeypatch.setenv(ENV, "all")
    assert GGMLLinear(STATUS.module, OneDnnPackedLinear()).ggml_types == frozenset(TYPES)
    monkeypatch.setenv(ENV, "0")
    method = GGMLLinear(STATUS.module, OneDnnPackedLinear())
    assert method.ggml_types == frozenset()
    with pytest.raises(TypeError, match="dequantize"):
        method.prepare(_weight("Q4_1", 16, 32, seed=0))


def test_the_platform_default_takes_ggml_blocks_where_bf16_is_native(monkeypatch):
    from plinth_cpu.gemv import native_bf16
    from plinth_cpu.platform import CpuPlatform

    monkeypatch.delenv(ENV, raising=False)
    method = CpuPlatform().quantization_methods()["unquantized"]
    if native_bf16(STATUS.module):
        assert isinstance(method, GGMLLinear) and method.ggml_types == DEFAULT_TYPES
    else:
        assert not method.ggml_types
