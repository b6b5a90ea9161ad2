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
        return AutoTokenizer.from_pretrained(source, **kwargs)
    kwargs.setdefault("local_files_only", True)
    return AutoTokenizer.from_pretrained(source, revision=model_config.revision, **kwargs)
