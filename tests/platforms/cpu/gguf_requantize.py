"""Rewrite a GGUF file with its projection weights in another GGML type (test fixtures).

Metadata (config, tokenizer, chat template) is copied field by field; projections
(``attn_q/k/v/output``, ``ffn_gate/up/down``) are dequantized with gguf and quantized again
to ``type_name`` with gguf's reference quantizer; every other tensor is copied as it is.
"""

from __future__ import annotations

from pathlib import Path

_PROJECTIONS = ("attn_q.", "attn_k.", "attn_v.", "attn_output.", "ffn_gate.", "ffn_up.", "ffn_down.")


def requantize_gguf(source: Path, target: Path, type_name: str) -> Path:
    import gguf
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    reader = gguf.GGUFReader(str(source))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    writer = gguf.GGUFWriter(str(target), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), value_type, sub_type=sub_type)
    new_type = GGMLQuantizationType[type_name]
    for tensor in reader.tensors:
        if any(part in tensor.name for part in _PROJECTIONS):
            values = dequantize(tensor.data, tensor.tensor_type)
            writer.add_tensor(tensor.name, quantize(values, new_type), raw_dtype=new_type)
        else:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target
