"""The model's tokenizer (with its chat template) through transformers' AutoTokenizer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth.model.model_config import ModelConfig


def load_tokenizer(model_config: ModelConfig, **kwargs: Any) -> Any:
    """The HF tokenizer of ``model_config.tokenizer``: a folder, a cached hub id or a ``.gguf`` file.

    For GGUF, transformers rebuilds the tokenizer and chat template from the file's metadata.
    ``kwargs`` go to ``AutoTokenizer.from_pretrained``. Never downloads.
    """
    from transformers import AutoTokenizer

    source = model_config.tokenizer
    if source is None:
        raise ValueError(f"{model_config.model} has no tokenizer source; pass tokenizer=<folder or .gguf>")
    if source.endswith(".gguf"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"tokenizer GGUF file {source} does not exist")
        from plinth.model.loader.gguf_loader import require_gguf

        require_gguf()
        return AutoTokenizer.from_pretrained(os.path.dirname(source) or ".", gguf_file=os.path.basename(source), **kwargs)
    if os.path.isdir(source):
        if not _has_tokenizer_files(source):
            raise ValueError(_no_tokenizer(source, "holds no tokenizer files (tokenizer.json, tokenizer.model, "
                                                  "vocab.json, ...)"))
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if len(tokenizer) <= 1:  # transformers builds an empty tokenizer from a config alone
            raise ValueError(_no_tokenizer(source, "gives an empty tokenizer"))
        return tokenizer
    kwargs.setdefault("local_files_only", True)
    return AutoTokenizer.from_pretrained(source, revision=model_config.revision, **kwargs)


_TOKENIZER_FILE_PREFIXES = ("tokenizer", "vocab", "merges", "spiece", "sentencepiece")


def _has_tokenizer_files(folder: str) -> bool:
    return any(name.startswith(_TOKENIZER_FILE_PREFIXES) or name.endswith((".model", ".tiktoken"))
               for name in os.listdir(folder))


def _no_tokenizer(source: str, what: str) -> str:
    return (f"{source} {what}: pass a tokenizer (tokenizer=<folder or .gguf>, `--tokenizer`), or work in token ids "
            "without one (skip_tokenizer_init=True, `--skip-tokenizer-init`)")
