"""Int8 weight-only linears equal the fp32 linear on the dequantized weight, on every ISA path."""

from __future__ import annotations

import pytest
import torch

from plinth.testing.conformance.tolerances import assert_close
from plinth_cpu.extension import load_extension
from plinth_cpu.quantization import Int8WeightOnly

STATUS = load_extension("auto")
pytestmark = pytest.mark.skipif(STATUS.module is None, reason=f"C++ kernels not loaded: {STATUS.reason}")
ISAS = list(STATUS.module.available_isas()) if STATUS.module is not None else []


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("m,n,k,bias", [(1, 576, 576, False), (7, 1537, 576, True), (32, 64, 1000, False),
                                        (33, 3, 8, True)])
def test_int8_linear_matches_dequantized_reference(isa, dtype, m, n, k, bias):
    STATUS.module.set_isa(isa)
    try:
        gen = torch.Generator().manual_seed(m * n + k)
        dt = getattr(torch, dtype)
        method = Int8WeightOnly(STATUS.module)
        weight = method.quantize(torch.randn(n, k, generator=gen) * 0.05)
        x = torch.randn(m, k, generator=gen).to(dt)
        b = torch.randn(n, generator=gen).to(dt) if bias else None
        assert_close(method.apply(x, weight, b), method.reference(x, weight, b), dtype, f"int8 linear on {isa}")
    finally:
        STATUS.module.set_isa(ISAS[0])


def test_quantize_round_trip_error_is_within_half_a_step():
    w = torch.randn(64, 128)
    q = Int8WeightOnly.quantize(w)
    assert q.qweight.dtype == torch.int8 and q.scale.shape == (64,)
    assert ((Int8WeightOnly.dequantize(q) - w).abs() <= q.scale[:, None] / 2 + 1e-6).all()


def test_a_model_layer_built_for_int8_computes_on_the_dequantized_weight():
    from plinth.model.build_context import BuildContext
    from plinth.model.layers import MergedColumnParallelLinear
    from plinth.ops.reference_backend import ReferenceAttentionBackend
    from plinth.platform import KernelRegistry

    method = Int8WeightOnly(STATUS.module)
    ctx = BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.bfloat16, torch.device("cpu"),
                       linear_methods={method.name: method}, quantization=method.name)
    layer = MergedColumnParallelLinear(64, [96, 96], ctx)
    gen = torch.Generator().manual_seed(1)
    for shard in (0, 1):
        layer.weight.weight_loader(layer.weight, torch.randn(96, 64, generator=gen) * 0.1, shard)
    float_weight = layer.weight.detach().clone()
    layer.process_weights_after_loading()
    x = torch.randn(5, 64, generator=gen).bfloat16()
    assert_close(layer(x), method.reference(x, layer.prepared), "bfloat16", "int8 layer")
    assert not torch.equal(layer(x), torch.nn.functional.linear(x, float_weight)), "the float weight was used"
    assert layer.weight.numel() == 0, "the float weight is still held next to the int8 one"
