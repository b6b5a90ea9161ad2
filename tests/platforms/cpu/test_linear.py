"""oneDNN-packed float linears equal F.linear (the reference), and the platform offers them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plinth.platform.linear_method import UNQUANTIZED
from plinth.testing.conformance.tolerances import assert_close
from plinth_cpu.linear import OneDnnPackedLinear, onednn_packing_available

needs_onednn = pytest.mark.skipif(not onednn_packing_available(), reason="torch built without oneDNN linear packing")


@needs_onednn
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape,n,bias", [((1, 576), 960, False), ((7, 64), 3, True), ((32, 576), 3072, False),
                                          ((2, 5, 96), 80, True), ((300, 1536), 576, False)])
def test_packed_linear_matches_f_linear(dtype, shape, n, bias):
    gen = torch.Generator().manual_seed(n)
    dt = getattr(torch, dtype)
    weight = (torch.randn(n, shape[-1], generator=gen) * 0.05).to(dt)
    b = torch.randn(n, generator=gen).to(dt) if bias else None
    x = torch.randn(*shape, generator=gen).to(dt)
    method = OneDnnPackedLinear()
    prepared = method.prepare(weight)
    # oneDNN packs bf16 only where the CPU has bf16 support (avx512_bf16, AMX); elsewhere the plain weight stays
    packs = dt != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert prepared.is_mkldnn == packs, "the weight was not packed" if packs else "bf16 packed without CPU support"
    assert_close(method.apply(x, prepared, b), F.linear(x, weight, b), dtype, "packed linear")


@needs_onednn
def test_strided_and_empty_inputs_and_unpacked_weights():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=gen).bfloat16()
    method = OneDnnPackedLinear()
    prepared = method.prepare(weight)
    wide = torch.randn(9, 100, generator=gen).bfloat16()
    assert_close(method.apply(wide[:, :64], prepared), F.linear(wide[:, :64], weight), "bfloat16", "strided input")
    assert method.apply(torch.empty(0, 64, dtype=torch.bfloat16), prepared).shape == (0, 48)
    assert torch.equal(method.apply(wide[:, :64], weight), F.linear(wide[:, :64], weight))  # never prepared
    assert method.prepare(torch.randn(4, 4, dtype=torch.float16)).is_mkldnn is False  # fp16 stays plain


def test_the_platform_offers_the_packed_method_as_unquantized():
    from plinth_cpu.platform import CpuPlatform

    method = CpuPlatform().quantization_methods()[UNQUANTIZED]
    # on CPUs with native bf16 dot products GGML blocks and bf16 weights have their own methods in front
    while hasattr(method, "fallback"):
        method = method.fallback
    assert isinstance(method, OneDnnPackedLinear)


@needs_onednn
def test_a_model_on_packed_linears_matches_transformers(tmp_path):
    from plinth.model.build_context import BuildContext
    from plinth.model.loader import get_model
    from plinth.model.model_config import ModelConfig
    from plinth.ops.reference_backend import ReferenceAttentionBackend
    from plinth.platform import KernelRegistry
    from plinth_cpu.platform import CpuPlatform
    from tests.core.model.batch_util import PagedDriver
    from tests.core.model.conftest import build_hf_model, tiny_config
    from tests.core.model.test_models import run_schedule

    hf_model = build_hf_model(tiny_config("llama", tie_word_embeddings=False))
    hf_model.save_pretrained(tmp_path)
    config = ModelConfig.from_source(str(tmp_path), dtype="float32")
    ctx = BuildContext(KernelRegistry(), ReferenceAttentionBackend(), config.dtype, torch.device("cpu"), block_size=4,
                       linear_methods=CpuPlatform().quantization_methods())
    model = get_model(config, ctx, progress=False)
    assert model.model.layers[0].self_attn.qkv_proj.prepared.is_mkldnn and model.lm_head.prepared.is_mkldnn
    for req, (tokens, ours) in run_schedule(PagedDriver(model, ctx.attention_backend)).items():
        with torch.no_grad():
            ref = hf_model(torch.tensor([tokens])).logits[0]
        torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4, msg=lambda m, req=req: f"{req}: {m}")
