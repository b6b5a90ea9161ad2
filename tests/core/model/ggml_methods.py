"""A torch linear method that keeps GGML blocks (the contract's semantics, no kernel): for tests."""

from __future__ import annotations

import torch.nn.functional as F

from plinth.model.ggml_tensor import GGMLTensor
from plinth.platform.linear_method import LinearMethod


class KeepBlocks(LinearMethod):
    """Takes Q8_0/Q4_0/Q4_1 blocks as they are; computes on their dequantized weight."""

    ggml_types = frozenset({"Q8_0", "Q4_0", "Q4_1"})

    def prepare(self, weight):
        return weight

    def apply(self, x, prepared, bias=None):
        if isinstance(prepared, GGMLTensor):
            prepared = prepared.dequantize().to(x.dtype)
        return F.linear(x, prepared, bias)
