"""Random weights of the right shapes (``load_format="dummy"``), for benchmarks: no file access."""

from __future__ import annotations

import torch
from torch import nn


def initialize_dummy_weights(model: nn.Module, seed: int = 0, scale: float = 1e-3) -> None:
    """Fill every parameter uniformly in ``[-scale, scale]``; norm weights (1-D ``*norm*``) get 1."""
    generator = _generator(next(model.parameters()).device, seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and param.dim() == 1:
                param.fill_(1.0)
            elif generator is not None:
                param.uniform_(-scale, scale, generator=generator)
            else:  # a device without its own generator: draw on the host
                cpu = torch.Generator().manual_seed(seed)
                param.copy_(torch.empty(param.shape, dtype=torch.float32).uniform_(-scale, scale, generator=cpu))


def _generator(device: torch.device, seed: int) -> torch.Generator | None:
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:
        return None
