"""A converted copy of a GGUF file as an HF folder, so the slow conversion runs once.

Parsing a GGUF's metadata (the tokenizer vocabulary is stored as one field per string)
and dequantizing its tensors takes tens of seconds on a small CPU; a folder of
``config.json``, tokenizer files and ``model.safetensors`` loads in one or two. Block-quantized
projections are stored as their raw blocks (uint8, types in the file's ``ggml_types`` metadata,
read back as ``GGMLTensor`` by the safetensors loader); everything else as float32.
The copy lives under ``$PLINTH_CACHE_DIR`` (default ``~/.cache/plinth``) keyed by the
file's path, size and modification time; ``PLINTH_CACHE_DIR=""`` turns caching off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE_ENV = "PLINTH_CACHE_DIR"
_FORMAT_VERSION = "2"  # bump when the conversion changes


def cache_root() -> Path | None:
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "plinth"
    return Path(value) if value else None


def _key(path: Path) -> str:
    stat = path.stat()
    raw = f"{_FORMAT_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def converted_gguf_folder(gguf_path: str) -> str | None:
    """The cached HF folder for ``gguf_path``, converting it first if needed.

    Returns None (and the caller reads the GGUF directly) when caching is off or the
    cache cannot be written; never leaves a half-written folder behind.
    """
    root = cache_root()
    if root is None:
        return None
    path = Path(gguf_path)
    target = root / "gguf" / f"{path.stem}-{_key(path)}"
    if (target / "model.safetensors").is_file():
        return str(target)
    try:
        root.joinpath("gguf").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=root / "gguf"))
        try:
            convert_gguf(path, staging)
            staging.rename(target)
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        logger.warning("cannot cache the converted GGUF under %s (%s); reading the GGUF directly", root, exc)
        return None
    logger.info("converted %s into %s", path, target)
    return str(target)


def convert_gguf(path: Path, folder: Path, keep_blocks: bool = True) -> None:
    """Write ``path`` as an HF folder into ``folder`` (which must exist): config, tokenizer and
    ``model.safetensors``. ``keep_blocks=False`` dequantizes every tensor to float32: a folder any
    HF-format reader (transformers, vLLM) loads; with blocks kept only plinth reads it."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from plinth.model.ggml_tensor import GGMLTensor
    from plinth.model.loader.gguf_loader import iterate_gguf, load_gguf_config
    from plinth.model.loader.safetensors_loader import GGML_TYPES_KEY

    hf_config = load_gguf_config(str(path))
    tensors, ggml_types = {}, {}
    for name, tensor in iterate_gguf(str(path), hf_config, None, progress=True):
        if isinstance(tensor, GGMLTensor) and not keep_blocks:
            tensor = tensor.dequantize()
        elif isinstance(tensor, GGMLTensor):
            ggml_types[name] = [tensor.type_name, tensor.in_features]
            tensor = tensor.data
        tensors[name] = tensor.contiguous()
    metadata = {"format": "pt", "source": path.name}
    if ggml_types:
        metadata[GGML_TYPES_KEY] = json.dumps(ggml_types)
    save_file(tensors, str(folder / "model.safetensors"), metadata=metadata)
    hf_config.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.save_pretrained(folder)
