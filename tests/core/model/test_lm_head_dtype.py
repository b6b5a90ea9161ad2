"""The LM head returns logits in the model dtype (no fp32 copy per step; consumers upcast)."""

from __future__ import annotations

import torch

from plinth.model.build_context import BuildContext
from plinth.model.loader import get_model
from plinth.model.model_config import ModelConfig
from plinth.ops.reference_backend import ReferenceAttentionBackend
from plinth.platform.kernels import KernelRegistry


def test_compute_logits_keeps_the_model_dtype(tiny_checkpoint):
    folder, _ = tiny_checkpoint("llama", name="llama-tied", tie_word_embeddings=True)
    config = ModelConfig.from_source(folder, dtype="bfloat16")
    ctx = BuildContext(KernelRegistry(), ReferenceAttentionBackend(), config.dtype, torch.device("cpu"), block_size=4)
    model = get_model(config, ctx, progress=False)
    logits = model.compute_logits(torch.randn(3, model.config.hidden_size, dtype=torch.bfloat16))
    assert logits.dtype == torch.bfloat16 and logits.shape == (3, model.config.vocab_size)
