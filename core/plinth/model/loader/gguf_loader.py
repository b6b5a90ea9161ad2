"""GGUF files (llama.cpp): config and tokenizer through transformers, tensors through ``gguf``.

Tensors are renamed to HF names and llama.cpp's q/k row permutation (applied by its converter
for the ``llama`` architecture) is undone, so the model's ordinary weight loaders take them.
Block-quantized projection weights (``Q4_1``, ``Q8_0``, ...) are handed over as
:class:`~plinth.model.ggml_tensor.GGMLTensor` (the linear layers keep or dequantize them);
every other tensor is dequantized to float32 with ``gguf.quants.dequantize``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from plinth.model.ggml_tensor import GGMLTensor

# llama.cpp tensor name (inside ``blk.N.``) -> HF name (inside ``model.layers.N.``)
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_SKIPPED = ("rope_freqs",)  # llama3 rope factors: recomputed from the config
_PERMUTED_ARCHS = ("llama", "mistral")  # llama.cpp permutes q/k rows of these
_PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
_LAYER_RE = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
_GLOBAL_RE = re.compile(r"^(\w+)\.(weight|bias)$")


def require_gguf():
    """The ``gguf`` module, or an ImportError saying how to install it."""
    try:
        import gguf
    except ImportError as exc:
        raise ImportError("loading GGUF files needs the gguf package: pip install gguf") from exc
    return gguf


def load_gguf_config(path: str) -> Any:
    """The HF config of a GGUF file (transformers' GGUF conversion), with ``architectures`` set."""
    require_gguf()
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = AutoConfig.from_pretrained(os.path.dirname(path) or ".", gguf_file=os.path.basename(path))
    if not getattr(config, "architectures", None):
        arch = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)
        if arch is None:
            raise ValueError(f"GGUF {path}: no causal-LM architecture known for model_type {config.model_type!r}")
        config.architectures = [arch]
    return config


def hf_name(gguf_name: str) -> str | None:
    """The HF name of a llama.cpp tensor name; None for tensors the model does not use."""
    if match := _LAYER_RE.match(gguf_name):
        layer, part, kind = match.groups()
        if part in _LAYER_NAMES:
            return f"model.layers.{layer}.{_LAYER_NAMES[part]}.{kind}"
    elif match := _GLOBAL_RE.match(gguf_name):
        part, kind = match.groups()
        if part in _SKIPPED:
            return None
        if part in _GLOBAL_NAMES:
            return f"{_GLOBAL_NAMES[part]}.{kind}"
    raise ValueError(f"GGUF tensor {gguf_name!r} has no known HF name; this GGUF architecture is not supported")


def unpermute(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's ``permute``: per head, interleaved rotary pairs back to two halves."""
    rows = weight.shape[0]
    return weight.reshape(num_heads, rows // num_heads // 2, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def _field_str(reader: Any, key: str) -> str:
    field = reader.fields.get(key)
    if field is None:
        return ""
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def _to_torch(tensor: Any, dequantize) -> torch.Tensor | GGMLTensor:
    if _keeps_blocks(tensor):
        data = torch.from_numpy(np.array(tensor.data, dtype=np.uint8, copy=True))
        rows = int(np.prod([int(d) for d in tensor.shape.tolist()[1:]]))
        return GGMLTensor(tensor.tensor_type.name, data.reshape(rows, -1), int(tensor.shape[0]))
    array = dequantize(tensor.data, tensor.tensor_type)
    array = np.asarray(array).reshape([int(d) for d in reversed(tensor.shape.tolist())])
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)


def _keeps_blocks(tensor: Any) -> bool:
    """A 2-D projection weight in a block-quantized type (not F32/F16/BF16)."""
    match = _LAYER_RE.match(tensor.name)
    if match is None or match.group(2) not in _PROJECTIONS or match.group(3) != "weight":
        return False
    from gguf.constants import GGML_QUANT_SIZES

    return len(tensor.shape) == 2 and GGML_QUANT_SIZES[tensor.tensor_type][0] > 1


def iterate_gguf(
    path: str, hf_config: Any, dtype: torch.dtype | None = None, progress: bool = True
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(hf_name, tensor)`` for every weight of a GGUF file, unpermuted; block-quantized
    projections as ``GGMLTensor``, everything else dequantized (and cast to ``dtype``)."""
    gguf = require_gguf()
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(path)
    permuted = _field_str(reader, "general.architecture") in _PERMUTED_ARCHS
    heads = {"q_proj": hf_config.num_attention_heads,
             "k_proj": getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads}
    for tensor in tqdm(reader.tensors, desc="Loading GGUF", unit="tensor", disable=not progress):
        name = hf_name(tensor.name)
        if name is None:
            continue
        weight = _to_torch(tensor, dequantize)
        proj = name.split(".")[-2]
        if permuted and proj in heads:
            if isinstance(weight, GGMLTensor):
                weight = GGMLTensor(weight.type_name, unpermute(weight.data, heads[proj]), weight.in_features)
            else:
                weight = unpermute(weight, heads[proj])
        if dtype is not None and isinstance(weight, torch.Tensor) and weight.is_floating_point():
            weight = weight.to(dtype)
        yield name, weight
