"""Weights from an HF folder: one ``.safetensors`` file or a sharded index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from plinth.model.ggml_tensor import GGMLTensor
from plinth.model.loader.fp8_checkpoint import SCALE_SUFFIXES
from plinth.model.loader.fp8_config import FP8_FORMATS

INDEX_FILE = "model.safetensors.index.json"
#: file metadata key: JSON ``{name: [ggml_type, in_features]}`` of tensors stored as GGML blocks
#: (the converted GGUF copies of ``gguf_cache``)
GGML_TYPES_KEY = "plinth.ggml_types"


def safetensors_files(folder: str | Path) -> list[Path]:
    """The weight files of ``folder``: those named in the sharded index, else every ``*.safetensors``."""
    folder = Path(folder)
    index = folder / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{index} names shards that are missing: {missing}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        other = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        hint = f" (found {other}: convert them to safetensors)" if other else ""
        raise FileNotFoundError(f"no *.safetensors weights in {folder}{hint}; or use load_format='dummy'")
    return files


def iterate_safetensors(
    folder: str | Path, dtype: torch.dtype | None = None, progress: bool = True, keep_fp8: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(name, tensor)`` for every tensor of the folder's weights, floats cast to ``dtype``; tensors the
    file's metadata marks as GGML blocks as ``GGMLTensor``.

    ``keep_fp8`` (an fp8 checkpoint, for ``fp8_checkpoint.dequantize_weights``): 8-bit floats and the scales
    (``SCALE_SUFFIXES``) are kept as stored, so dequantizing reads the exact scales. Without it an 8-bit float
    tensor that would be cast is an error: its values mean nothing without their scale."""
    from safetensors import safe_open

    files = safetensors_files(folder)
    total = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            total += len(list(handle.keys()))
    with tqdm(total=total, desc="Loading safetensors", unit="tensor", disable=not progress) as bar:
        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                ggml_types = json.loads((handle.metadata() or {}).get(GGML_TYPES_KEY, "{}"))
                for name in handle.keys():
                    tensor = handle.get_tensor(name)
                    if name in ggml_types:
                        type_name, in_features = ggml_types[name]
                        tensor = GGMLTensor(type_name, tensor, in_features)
                    elif dtype is not None and tensor.is_floating_point():
                        tensor = _cast(name, tensor, dtype, keep_fp8)
                    yield name, tensor
                    bar.update(1)


def _cast(name: str, tensor: torch.Tensor, dtype: torch.dtype, keep_fp8: bool) -> torch.Tensor:
    """``tensor`` in ``dtype``, except the 8-bit floats and scales an fp8 checkpoint keeps (``keep_fp8``)."""
    fp8 = tensor.dtype.itemsize == 1
    if keep_fp8 and (fp8 or name.endswith(SCALE_SUFFIXES)):
        return tensor
    if fp8:
        raise ValueError(f"checkpoint tensor {name!r} is stored in {tensor.dtype}, but the config's "
                         f"quantization_config is not an fp8 format plinth reads ({FP8_FORMATS}); convert the "
                         "checkpoint to one of those, or to 16-bit weights")
    return tensor.to(dtype)
