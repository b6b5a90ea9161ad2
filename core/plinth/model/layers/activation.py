"""SiLU-and-mul: the gated activation of Llama-style MLPs."""

from __future__ import annotations

import torch

from plinth.model.build_context import BuildContext
from plinth.model.layers.layer import Layer
from plinth.platform.kernels import Op


class SiluAndMul(Layer):
    """``silu(x[..., :d]) * x[..., d:]`` for the merged ``gate_up`` output."""

    def __init__(self, ctx: BuildContext, intermediate_size: int | None = None) -> None:
        super().__init__()
        self._silu_and_mul = ctx.resolve(Op.SILU_AND_MUL, intermediate_size=intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._silu_and_mul(x)
