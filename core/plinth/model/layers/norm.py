"""RMSNorm, with the residual add fused in when a residual is given."""

from __future__ import annotations

import torch

from plinth.model.build_context import BuildContext
from plinth.model.layers.layer import Layer
from plinth.model.layers.linear import default_weight_loader, new_parameter
from plinth.platform.kernels import Op


class RMSNorm(Layer):
    """``weight * x / rms(x)`` over the last dimension (HF Llama semantics)."""

    def __init__(self, hidden_size: int, eps: float, ctx: BuildContext) -> None:
        super().__init__()
        self.eps = eps
        self.weight = new_parameter(ctx, hidden_size, loader=default_weight_loader)
        with torch.no_grad():
            self.weight.fill_(1.0)
        self._rms_norm = ctx.resolve(Op.RMS_NORM, hidden_size=hidden_size)
        self._fused_add_rms_norm = ctx.resolve(Op.FUSED_ADD_RMS_NORM, hidden_size=hidden_size)

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``norm(x)``; with ``residual``: ``(norm(x + residual), x + residual)``."""
        if residual is None:
            return self._rms_norm(x, self.weight, self.eps)
        return self._fused_add_rms_norm(x, residual, self.weight, self.eps)
