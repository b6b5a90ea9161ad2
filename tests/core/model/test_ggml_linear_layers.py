"""Linear layers keep GGML blocks when their method takes the type, else load them dequantized.

Every case compares the layer's output and prepared weight with the float path on the same
blocks' dequantized values (gguf's reference dequantization)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

gguf = pytest.importorskip("gguf")
from gguf.constants import GGMLQuantizationType  # noqa: E402
from gguf.quants import quantize  # noqa: E402

from plinth.model.build_context import BuildContext  # noqa: E402
from plinth.model.ggml_tensor import GGMLTensor  # noqa: E402
from plinth.model.layers.linear import (  # noqa: E402
    MergedColumnParallelLinear,
    QKVParallelLinear,
    RowParallelLinear,
)
from plinth.ops.reference_backend import ReferenceAttentionBackend  # noqa: E402
from plinth.platform.kernels import KernelRegistry  # noqa: E402
from plinth.platform.linear_method import TorchLinearMethod  # noqa: E402
from tests.core.model.ggml_methods import KeepBlocks  # noqa: E402


def ctx(method, tp_rank=0, tp_size=1):
    return BuildContext(KernelRegistry(), ReferenceAttentionBackend(), torch.float32, torch.device("cpu"),
                        tp_rank=tp_rank, tp_size=tp_size, linear_methods={"unquantized": method})


def blocks(type_name, rows, cols, seed):
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    return GGMLTensor(type_name, torch.from_numpy(quantize(w, GGMLQuantizationType[type_name])), cols)


def load(layer, shards):
    for shard_id, tensor in shards:
        layer.weight.weight_loader(layer.weight, tensor, shard_id)
    layer.process_weights_after_loading()


def test_qkv_keeps_blocks_and_computes_on_them():
    layer = QKVParallelLinear(64, 16, 4, 2, ctx(KeepBlocks()))
    shards = [("q", blocks("Q8_0", 64, 64, 0)), ("k", blocks("Q8_0", 32, 64, 1)), ("v", blocks("Q8_0", 32, 64, 2))]
    load(layer, shards)
    assert isinstance(layer.prepared, GGMLTensor) and layer.prepared.type_name == "Q8_0"
    expected = torch.cat([t.dequantize() for _, t in shards])
    assert torch.equal(layer.prepared.dequantize(), expected)
    assert layer.weight.numel() == 0  # the float copy is released
    x = torch.randn(5, 64)
    torch.testing.assert_close(layer(x), F.linear(x, expected), rtol=0, atol=0)


def test_mixed_types_in_one_weight_are_dequantized():
    layer = MergedColumnParallelLinear(64, [32, 32], ctx(KeepBlocks()))
    gate, up = blocks("Q8_0", 32, 64, 3), blocks("Q4_1", 32, 64, 4)
    load(layer, [(0, gate), (1, up)])
    assert isinstance(layer.prepared, torch.Tensor)
    assert torch.equal(layer.prepared, torch.cat([gate.dequantize(), up.dequantize()]))


def test_a_method_without_ggml_types_gets_floats():
    layer = MergedColumnParallelLinear(64, [32, 32], ctx(TorchLinearMethod()))
    gate, up = blocks("Q4_1", 32, 64, 5), blocks("Q4_1", 32, 64, 6)
    load(layer, [(0, gate), (1, up)])
    assert isinstance(layer.prepared, torch.Tensor)
    assert torch.equal(layer.prepared, torch.cat([gate.dequantize(), up.dequantize()]))


@pytest.mark.parametrize("in_features, keeps", [(128, True), (96, False)])
def test_row_parallel_splits_on_block_boundaries_only(in_features, keeps):
    weight = blocks("Q4_0", 16, in_features, 7)
    layer = RowParallelLinear(in_features, 16, ctx(KeepBlocks(), tp_rank=1, tp_size=2), reduce_results=False)
    load(layer, [(None, weight)])
    assert isinstance(layer.prepared, GGMLTensor) is keeps
    half = in_features // 2
    expected = weight.dequantize()[:, half:]
    got = layer.prepared.dequantize() if keeps else layer.prepared
    assert torch.equal(got, expected)


def test_a_method_may_refuse_blocks_for_the_models_dtype():
    class Bf16Only(KeepBlocks):
        def takes_ggml(self, type_name, dtype):
            return super().takes_ggml(type_name, dtype) and dtype == torch.bfloat16

    layer = MergedColumnParallelLinear(64, [32, 32], ctx(Bf16Only()))  # a float32 model
    gate, up = blocks("Q4_1", 32, 64, 8), blocks("Q4_1", 32, 64, 9)
    load(layer, [(0, gate), (1, up)])
    assert isinstance(layer.prepared, torch.Tensor)
    assert torch.equal(layer.prepared, torch.cat([gate.dequantize(), up.dequantize()]))
