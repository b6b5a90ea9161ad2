"""Tiny random-weight HF checkpoints (saved with save_pretrained) for model tests."""

from __future__ import annotations

import pytest
import torch

TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=256, initializer_range=0.2, max_position_embeddings=512,
)


def tiny_config(arch: str, **overrides):
    """A transformers config of ``arch`` with the tiny shapes above."""
    import transformers

    kwargs = {**TINY, **overrides}
    if arch == "qwen3":
        kwargs.setdefault("head_dim", 16)
    config_class = {
        "llama": transformers.LlamaConfig, "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config,
    }[arch]
    return config_class(**kwargs)


def build_hf_model(config, seed: int = 0):
    """An HF causal LM of ``config`` with random weights, biases and norm scales, in fp32."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.2)
            elif "norm" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    return model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``make(arch, name=..., max_shard_size=None, **config) -> (folder, hf_model)``, cached per name."""
    cache: dict[str, tuple] = {}

    def make(arch: str, name: str | None = None, max_shard_size: str | None = None, **overrides):
        key = name or arch
        if key not in cache:
            hf_model = build_hf_model(tiny_config(arch, **overrides))
            folder = tmp_path_factory.mktemp(key)
            kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
            hf_model.save_pretrained(folder, **kwargs)
            cache[key] = (str(folder), hf_model)
        return cache[key]

    return make
