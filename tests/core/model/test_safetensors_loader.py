"""Reading safetensors weights: an fp8 checkpoint's e4m3 tensors and scales are kept as stored, and 8-bit
floats outside a recognised fp8 format are an error, not a silent cast."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from plinth.model.loader.fp8_checkpoint import dequantize_weights
from plinth.model.loader.safetensors_loader import iterate_safetensors
from tests.e2e.fp8_checkpoint import quantize


def test_fp8_scales_stay_float32_so_a_float16_model_gets_weight_times_the_exact_scale(tmp_path):
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    q, scale = quantize(w / w.abs().max() * 5e-4, "tensor")  # scale ~1e-6: a float16 subnormal
    save_file({"l.weight": q, "l.weight_scale": scale}, tmp_path / "model.safetensors")
    stream = dict(iterate_safetensors(tmp_path, torch.float16, progress=False, keep_fp8=True))
    assert stream["l.weight_scale"].dtype == torch.float32 and stream["l.weight"].dtype == q.dtype
    got = dict(dequantize_weights(iterate_safetensors(tmp_path, torch.float16, progress=False, keep_fp8=True),
                                  torch.float16))["l.weight"]
    assert got.dtype == torch.float16 and torch.equal(got, (q.float() * scale).to(torch.float16))


def test_fp8_tensors_outside_an_fp8_checkpoint_are_an_error(tmp_path):
    q, _ = quantize(torch.randn(16, 16), "tensor")
    save_file({"l.bias": torch.ones(16), "l.weight": q}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"'l.weight' is stored in torch.float8_e4m3fn, but .* not an fp8 format "
                                         r"plinth reads \(quant_method 'fp8' .*'fbgemm_fp8'"):
        list(iterate_safetensors(tmp_path, torch.float32, progress=False))
