"""GGMLTensor against gguf's own quantize/dequantize: layout, row and block slicing, copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
from gguf.constants import GGMLQuantizationType  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

from plinth.model.ggml_tensor import GGMLTensor, block_geometry  # noqa: E402

TYPES = ("Q8_0", "Q4_0", "Q4_1")


def blocks(type_name: str, rows: int, cols: int, seed: int = 0) -> tuple[GGMLTensor, np.ndarray]:
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    data = quantize(w, GGMLQuantizationType[type_name])
    return GGMLTensor(type_name, torch.from_numpy(data), cols), data


@pytest.mark.parametrize("type_name", TYPES)
def test_dequantize_is_ggufs(type_name):
    t, data = blocks(type_name, 24, 96)
    assert t.shape == (24, 96) and t.dim() == 2 and t.block_values == 32
    expected = dequantize(data, GGMLQuantizationType[type_name]).reshape(24, 96)
    assert torch.equal(t.dequantize(), torch.from_numpy(expected))
    assert t.dequantize(torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("type_name", TYPES)
def test_narrow_rows_and_whole_blocks(type_name):
    t, _ = blocks(type_name, 24, 128, seed=1)
    full = t.dequantize()
    assert torch.equal(t.narrow(0, 8, 10).dequantize(), full[8:18])
    assert torch.equal(t.narrow(1, 32, 64).dequantize(), full[:, 32:96])
    with pytest.raises(ValueError, match="blocks hold 32 values"):
        t.narrow(1, 16, 32)


def test_copy_into_zeros_and_type_checks():
    q8, _ = blocks("Q8_0", 8, 64)
    target = GGMLTensor.zeros("Q8_0", 16, 64)
    assert torch.equal(target.dequantize(), torch.zeros(16, 64))
    target.narrow(0, 8, 8).copy_(q8)
    assert torch.equal(target.dequantize()[8:], q8.dequantize())
    q4, _ = blocks("Q4_1", 8, 64)
    with pytest.raises(TypeError, match="cannot copy Q4_1 into a GGML Q8_0"):
        target.narrow(0, 0, 8).copy_(q4)
    with pytest.raises(ValueError, match="do not hold"):
        GGMLTensor("Q8_0", torch.zeros(4, 30, dtype=torch.uint8), 32)
    with pytest.raises(ValueError, match="not a GGML quantization type"):
        block_geometry("Q9_9")
