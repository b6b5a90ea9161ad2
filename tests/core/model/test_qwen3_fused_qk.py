"""Qwen3 takes the platform's one-pass q/k norm + rotary (Op.QK_NORM_ROTARY) when one is registered,
and its logits still equal transformers'."""

from __future__ import annotations

import torch

from plinth.model.build_context import BuildContext
from plinth.model.loader import get_model
from plinth.model.model_config import ModelConfig
from plinth.ops import reference
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry, Op
from tests.core.model.batch_util import PagedDriver
from tests.core.model.test_models import ATOL, RTOL, run_schedule


def test_qwen3_uses_the_fused_op_and_matches_transformers(tiny_checkpoint):
    folder, hf_model = tiny_checkpoint("qwen3", name="qwen3", tie_word_embeddings=True)
    calls = []

    def fused(*args):
        calls.append(args[3])  # head_size
        return reference.qk_norm_rotary(*args)

    registry = KernelRegistry()
    registry.register(Op.QK_NORM_ROTARY, fused, name="test.qk_norm_rotary", priority=1)
    config = ModelConfig.from_source(folder, dtype="float32")
    backend = ReferenceAttentionBackend()
    model = get_model(config, BuildContext(registry, backend, config.dtype, torch.device("cpu"), block_size=4),
                      progress=False)
    results = run_schedule(PagedDriver(model, backend, device="cpu"))
    assert calls and set(calls) == {16}  # every layer, every step went through the fused op
    for req, (tokens, ours) in results.items():
        with torch.no_grad():
            ref = hf_model(torch.tensor([tokens])).logits[0]
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=RTOL, msg=lambda m, req=req: f"qwen3/{req}: {m}")
    assert len(calls) == 2 * (2 + 5)  # 2 layers x (2 mixed steps + 5 decode steps)


def test_without_a_platform_kernel_qwen3_calls_norm_then_rotary(tiny_checkpoint):
    folder, _ = tiny_checkpoint("qwen3", name="qwen3", tie_word_embeddings=True)
    config = ModelConfig.from_source(folder, dtype="float32")
    model = get_model(config, BuildContext(KernelRegistry(), ReferenceAttentionBackend(), config.dtype,
                                           torch.device("cpu"), block_size=4), progress=False)
    assert all(layer.self_attn._fused is None for layer in model.model.layers)
