"""load_tokenizer refuses folders that give no real tokenizer, naming the two ways out."""

from __future__ import annotations

import json

import pytest
import transformers

from plinth.model.model_config import ModelConfig
from plinth.model.tokenizer import load_tokenizer

TINY_QWEN2 = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, architectures=["Qwen2ForCausalLM"])


def _config_folder(path):
    transformers.Qwen2Config(**TINY_QWEN2).save_pretrained(path)
    return ModelConfig.from_source(str(path), load_format="dummy")


def test_a_folder_without_tokenizer_files(tmp_path):
    config = _config_folder(tmp_path)
    with pytest.raises(ValueError, match="holds no tokenizer files.*--tokenizer.*--skip-tokenizer-init"):
        load_tokenizer(config)


def test_a_folder_whose_tokenizer_comes_out_empty(tmp_path):
    """transformers builds a tokenizer of one token from a tokenizer_config.json without a vocabulary."""
    config = _config_folder(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Qwen2Tokenizer"}))
    assert len(transformers.AutoTokenizer.from_pretrained(tmp_path)) <= 1  # the behaviour this guards against
    with pytest.raises(ValueError, match="empty tokenizer.*--skip-tokenizer-init"):
        load_tokenizer(config)
