"""A linear weight kept in a GGML block-quantized format, as a GGUF file stores it.

GGUF files (llama.cpp) store most linear weights as rows of fixed-size blocks along the input
dimension: ``Q8_0`` = 32 int8 values and one fp16 scale (34 bytes), ``Q4_1`` = 32 4-bit values,
an fp16 scale and an fp16 minimum (20 bytes), and so on. The loaders hand such a weight over as a
:class:`GGMLTensor`; a linear layer whose linear method computes on that type
(``LinearMethod.ggml_types`` / ``takes_ggml``) keeps it as it is, every other parameter receives it
dequantized.

A ``GGMLTensor`` behaves like the float ``[out_features, in_features]`` tensor it encodes where
the layers' weight loaders need it to: ``shape``, ``dim()``, ``narrow`` (whole rows, or whole
blocks along the input dimension) and ``copy_`` from another of the same type.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def block_geometry(type_name: str) -> tuple[int, int]:
    """``(values per block, bytes per block)`` of a GGML quantization type name."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except KeyError:
        raise ValueError(f"{type_name!r} is not a GGML quantization type") from None


@dataclass
class GGMLTensor:
    """``data`` holds, per output row ``n``, the blocks of ``w[n, :]`` in file order."""

    type_name: str  # a gguf.GGMLQuantizationType name: "Q8_0", "Q4_0", "Q4_1", ...
    data: torch.Tensor  # uint8 [out_features, in_features // block_values * block_bytes]
    in_features: int

    def __post_init__(self) -> None:
        values, nbytes = block_geometry(self.type_name)
        if self.data.dtype != torch.uint8 or self.data.dim() != 2:
            raise ValueError(f"GGML {self.type_name} data must be a 2-D uint8 tensor, got {self.data.dtype} "
                             f"{tuple(self.data.shape)}")
        if self.in_features % values or self.data.shape[1] != self.in_features // values * nbytes:
            raise ValueError(f"GGML {self.type_name}: {self.data.shape[1]} bytes per row do not hold "
                             f"{self.in_features} values in blocks of {values}")

    @classmethod
    def zeros(cls, type_name: str, out_features: int, in_features: int) -> GGMLTensor:
        """An all-zero weight of this type (every block's scale 0), to be filled by ``copy_``."""
        values, nbytes = block_geometry(type_name)
        if in_features % values:
            raise ValueError(f"GGML {type_name} rows hold multiples of {values} values, not {in_features}")
        return cls(type_name, torch.zeros(out_features, in_features // values * nbytes, dtype=torch.uint8),
                   in_features)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.data.shape[0], self.in_features)

    @property
    def block_values(self) -> int:
        return block_geometry(self.type_name)[0]

    def dim(self) -> int:
        return 2

    def narrow(self, dim: int, start: int, length: int) -> GGMLTensor:
        """Rows ``start:start+length`` (dim 0), or input features (dim 1) on block boundaries."""
        if dim == 0:
            return GGMLTensor(self.type_name, self.data.narrow(0, start, length), self.in_features)
        if dim in (1, -1):
            values, nbytes = block_geometry(self.type_name)
            if start % values or length % values:
                raise ValueError(f"cannot split a GGML {self.type_name} weight at input feature {start} "
                                 f"(+{length}): blocks hold {values} values; use another tensor-parallel size")
            return GGMLTensor(self.type_name, self.data.narrow(1, start // values * nbytes, length // values * nbytes),
                              length)
        raise IndexError(f"GGMLTensor has 2 dimensions, not {dim}")

    def copy_(self, other: GGMLTensor) -> GGMLTensor:
        if not isinstance(other, GGMLTensor) or other.type_name != self.type_name:
            got = other.type_name if isinstance(other, GGMLTensor) else type(other).__name__
            raise TypeError(f"cannot copy {got} into a GGML {self.type_name} weight")
        self.data.copy_(other.data)
        return self

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The float weight ``[out_features, in_features]`` (gguf's reference dequantization)."""
        from gguf.constants import GGMLQuantizationType
        from gguf.quants import dequantize

        array = dequantize(self.data.contiguous().numpy(), GGMLQuantizationType[self.type_name])
        return torch.from_numpy(array.reshape(self.shape).copy()).to(dtype)
